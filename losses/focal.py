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

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        alpha: weight of the positives (1−α for negatives); α < 0 disables the weighting.
        gamma: focusing exponent.
    """
    from torchvision.ops import sigmoid_focal_loss  # imported here: torchvision loads slowly

    z, y = prepare(logits, targets, validate=validate)
    per_class = sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none")  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss("focal", reference="Lin et al. 2017, Focal Loss for Dense Object Detection (ICCV)")
class FocalLoss(FunctionalLoss, fn=focal_loss):
    """Module form of :func:`focal_loss`."""
