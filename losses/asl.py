"""Asymmetric loss (Ridnik et al., ICCV 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, focusing_weight, prepare, reduce_loss
from ._registry import register_loss


def asl_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    detach_focal: bool = False,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c [−y (1−p)^γ+ log p − (1−y) p_m^γ− log(1 − p_m)].

    p = σ(z), p_m = max(p − clip, 0); log arguments are clamped at ``eps``.

    Peers (defaults and values): timm's ``timm.loss.AsymmetricLossMultiLabel`` and the official
    ``AsymmetricLoss`` (github.com/Alibaba-MIIL/ASL, ``src/loss_functions/losses.py``): same
    γ−=4, γ+=1, clip=0.05, eps=1e-8, and the gradient flows through the focusing weights
    (timm's ``disable_torch_grad_focal_loss=False``; the official switch is commented out).
    ``detach_focal=True`` gives their detached variant. ``tests/losses/test_peers.py`` checks
    value and gradient against timm, both settings. Reductions: the official code returns the
    sum over batch and classes and timm's default "batchmean" that sum / B; here, per the
    package convention, the class mean per sample (timm's "none" averaged over classes).
    Deviations: log p is computed as ``logsigmoid`` (clamped at log eps), 1 − p and 1 − p_m
    from σ(−z), so they keep their precision where p is close to 1 (same values where the
    peers' 1 − σ(z) is exact); the focusing weights have a finite gradient where their base
    is 0 (the peers' ``pow`` gives NaN there for γ < 1: a saturated logit, or p ≤ clip);
    bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        gamma_neg: focusing exponent of the negatives (γ−).
        gamma_pos: focusing exponent of the positives (γ+).
        clip: probability margin m shifting the negatives.
        eps: lower clamp of the log arguments.
        detach_focal: compute the focusing weights without gradient (off by default, as in
            timm and the official code).
    """
    z, y = prepare(logits, targets, validate=validate)
    one_minus_p = torch.sigmoid(-z)  # σ(−z) keeps precision where p is close to 1
    one_minus_pm = (one_minus_p + clip).clamp(max=1.0)  # 1 − p_m = min(σ(−z) + clip, 1)
    log_p = F.logsigmoid(z).clamp(min=math.log(eps))  # = log(max(p, eps))
    log_one_minus_pm = one_minus_pm.clamp(min=eps).log()
    w_pos = focusing_weight(one_minus_p, gamma_pos)  # (1 − p)^γ+
    w_neg = focusing_weight(1 - one_minus_pm, gamma_neg)  # p_m^γ−
    if detach_focal:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    per_class = -(y * w_pos * log_p + (1 - y) * w_neg * log_one_minus_pm)  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "asl",
    reference="Ridnik et al. 2021, Asymmetric Loss for Multi-Label Classification (ICCV)",
    peer="timm.loss.AsymmetricLossMultiLabel (defaults, gradient through the focusing weight, "
    "as the official Alibaba-MIIL/ASL AsymmetricLoss)",
)
class AsymmetricLoss(FunctionalLoss, fn=asl_loss):
    """Module form of :func:`asl_loss`."""
