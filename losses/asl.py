"""Asymmetric loss (Ridnik et al., ICCV 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss
from ._registry import register_loss


def asl_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    detach_focal: bool = True,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c [−y (1−p)^γ+ log p − (1−y) p_m^γ− log(1 − p_m)].

    p = σ(z), p_m = max(p − clip, 0); log arguments are clamped at ``eps`` and the focusing
    weight is detached by default, as in the official code (which returns a sum over
    everything; here the class mean, per the package convention).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        gamma_neg: focusing exponent of the negatives (γ−).
        gamma_pos: focusing exponent of the positives (γ+).
        clip: probability margin m shifting the negatives.
        eps: lower clamp of the log arguments.
        detach_focal: compute the focusing weights without gradient.
    """
    z, y = prepare(logits, targets, validate=validate)
    prob = torch.sigmoid(z)
    # 1 − p_m = min(σ(−z) + clip, 1); σ(−z) keeps precision where p is close to 1.
    one_minus_pm = (torch.sigmoid(-z) + clip).clamp(max=1.0)
    log_p = F.logsigmoid(z).clamp(min=math.log(eps))  # = log(max(p, eps))
    log_one_minus_pm = one_minus_pm.clamp(min=eps).log()
    w_pos = (1 - prob).pow(gamma_pos)
    w_neg = (1 - one_minus_pm).pow(gamma_neg)  # p_m^γ−
    if detach_focal:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    per_class = -(y * w_pos * log_p + (1 - y) * w_neg * log_one_minus_pm)  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "asl", reference="Ridnik et al. 2021, Asymmetric Loss for Multi-Label Classification (ICCV)"
)
class AsymmetricLoss(FunctionalLoss, fn=asl_loss):
    """Module form of :func:`asl_loss`."""
