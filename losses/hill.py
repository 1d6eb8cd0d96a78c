"""Hill loss (Zhang et al. 2021, Simple and Robust Loss Design for Multi-Label Learning with Missing Labels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss
from ._registry import register_loss


def hill_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    lamb: float = 1.5,
    margin: float = 1.0,
    gamma: float = 2.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample mean over classes of −(1−p_m)^γ log p_m (positives) and (λ − p) p² (negatives).

    p = σ(z), p_m = σ(z − margin); the focal weight is not detached (as in the official code).

    Source: Zhang et al. 2021, arXiv:2112.07368, the Hill loss with the focal-margin positive
    term; official code: github.com/xinyu1205/robust-loss-mlml,
    ``src/loss_functions/losses.py`` (``Hill``; same defaults λ=1.5, m=1, γ=2). No installed
    peer; checked against an independent float64 transcription (``tests/losses/reference.py``).
    Deviations, on purpose: log p_m is ``logsigmoid`` (the official ``log(sigmoid(.))`` is −∞
    for logits below about −88 in fp32, and SPEC §1 wants a finite loss); the class mean per
    sample instead of the official default sum over batch and classes (package convention);
    bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        lamb: λ of the Hill negative term.
        margin: m of the positive term.
        gamma: focusing exponent of the positive term.
    """
    z, y = prepare(logits, targets, validate=validate)
    shifted = z - margin
    pos = -torch.sigmoid(-shifted).pow(gamma) * F.logsigmoid(shifted)  # (1 − p_m) = σ(m − z)
    prob = torch.sigmoid(z)
    neg = (lamb - prob) * prob.pow(2)
    per_class = y * pos + (1 - y) * neg  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "hill",
    reference="Zhang et al. 2021, Simple and Robust Loss Design for Multi-Label Learning with Missing Labels (arXiv:2112.07368)",
)
class HillLoss(FunctionalLoss, fn=hill_loss):
    """Module form of :func:`hill_loss`."""
