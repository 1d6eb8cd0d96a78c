"""Weighted BCE with batch label statistics (Wang et al. 2017, ChestX-ray8)."""

from __future__ import annotations

from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss, softplus
from ._registry import register_loss


def wbce_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample (1/C) Σ_c [β_P y_c softplus(−z_c) + β_N (1−y_c) softplus(z_c)].

    β_P = (|P_B|+|N_B|)/|P_B| and β_N = (|P_B|+|N_B|)/|N_B| are counted over the whole batch's
    label matrix (so the loss is batch-coupled); a term whose count is 0 is dropped. The
    per-sample values ("none") are those of the samples within this batch.

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).
    """
    z, y = prepare(logits, targets, validate=validate)
    total = y.numel()
    n_pos = y.sum()
    # A count of 0 means that term's labels are all absent, so clamping only avoids 0/0.
    beta_pos = total / n_pos.clamp(min=1)
    beta_neg = total / (total - n_pos).clamp(min=1)
    per_class = beta_pos * y * softplus(-z) + beta_neg * (1 - y) * softplus(z)  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss("wbce", batch_coupled=True, reference="Wang et al. 2017, ChestX-ray8 (CVPR)")
class WeightedBCELoss(FunctionalLoss, fn=wbce_loss):
    """Module form of :func:`wbce_loss`."""
