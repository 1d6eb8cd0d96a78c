"""Binary cross-entropy with logits, averaged over classes (the baseline)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss
from ._registry import register_loss


def bce_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample (1/C) Σ_c [softplus(z_c) − y_c z_c].

    Peers: ``torch.nn.functional.binary_cross_entropy_with_logits`` ("mean" equals its "mean";
    "none" is its "none" averaged over classes; "sum" its "sum" / C) and
    ``torch.nn.MultiLabelSoftMarginLoss`` (the same per-sample loss), checked by
    ``tests/losses/test_peers.py``. Deviation: bf16 logits are clamped to ±65504
    (:mod:`losses._common`).

    Args:
        logits: (B, C) fp32/fp16/bf16/fp64 (low precision is computed in fp32).
        targets: (B, C) in {0, 1}, bool, int or float.
        reduction: "mean" | "sum" over samples, or "none" for the (B,) per-sample loss.
        validate: check the inputs (shapes, dtypes, target values).
    """
    z, y = prepare(logits, targets, validate=validate)
    per_class = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "bce",
    reference="binary cross-entropy with logits",
    peer="torch.nn.functional.binary_cross_entropy_with_logits, torch.nn.MultiLabelSoftMarginLoss",
)
class BCELoss(FunctionalLoss, fn=bce_loss):
    """Module form of :func:`bce_loss`."""
