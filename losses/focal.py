"""Sigmoid focal loss (Lin et al. 2017), via ``torchvision.ops.sigmoid_focal_loss``."""

from __future__ import annotations

from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss
from ._registry import register_loss


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c −α_t (1−p_t)^γ log p_t (torchvision's sigmoid focal loss).

    Peer: ``torchvision.ops.sigmoid_focal_loss``, which computes it (same defaults α=0.25,
    γ=2, those of Lin et al.); "none" is its "none" averaged over classes, "mean" its "mean",
    "sum" its "sum" / C (checked by ``tests/losses/test_peers.py``). fp16/bf16 logits are
    computed in fp32 (torchvision would compute in their own precision), bf16 clamped to
    ±65504 (:mod:`losses._common`); any α < 0 disables the weighting (torchvision takes −1
    only). Inherited from torchvision: for γ < 1 the gradient is NaN where a logit saturates
    (its ``(1 − p_t) ** γ`` has the gradient γ·0^(γ−1)·0 there); the default γ = 2 is finite.

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        alpha: weight of the positives (1−α for negatives), in [0, 1]; α < 0 disables the
            weighting.
        gamma: focusing exponent.
    """
    from torchvision.ops import sigmoid_focal_loss  # imported here: torchvision loads slowly

    z, y = prepare(logits, targets, validate=validate)
    alpha = -1.0 if alpha < 0 else alpha  # torchvision's "no weighting"
    per_class = sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none")  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "focal",
    reference="Lin et al. 2017, Focal Loss for Dense Object Detection (ICCV)",
    peer="torchvision.ops.sigmoid_focal_loss",
)
class FocalLoss(FunctionalLoss, fn=focal_loss):
    """Module form of :func:`focal_loss`."""
