"""Softmax cross-entropy with normalised multi-hot targets (Mahajan et al. 2018)."""

from __future__ import annotations

from torch import Tensor

from ._common import FunctionalLoss, positive_mean, prepare, reduce_loss
from ._registry import register_loss


def sce_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample −Σ_c (y_c/|P|) log softmax(z)_c; 0 if P = ∅.

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).
    """
    z, y = prepare(logits, targets, validate=validate)
    return reduce_loss(positive_mean(-z.log_softmax(dim=1), y), reduction)


@register_loss(
    "sce",
    reference="Mahajan et al. 2018, Exploring the Limits of Weakly Supervised Pretraining (ECCV)",
)
class SoftmaxCELoss(FunctionalLoss, fn=sce_loss):
    """Module form of :func:`sce_loss`."""
