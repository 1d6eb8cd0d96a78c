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

    Source: Wang et al. 2017 (arXiv:1705.02315), the weighted cross-entropy loss W-CEL,
    β_P Σ_{y_c=1} −ln σ(z_c) + β_N Σ_{y_c=0} −ln(1 − σ(z_c)) (no official code released). Peer: β_N ·
    ``torch.nn.functional.binary_cross_entropy_with_logits(pos_weight=β_P/β_N)`` with the
    batch's β (checked by ``tests/losses/test_peers.py``). Deviations, on purpose: the
    class mean per sample (the paper sums over classes), so that values compare with
    ``bce``; batch coupling as in the paper (its β are the batch's), hence "none" holds only
    within one batch; bf16 logits clamped to ±65504 (:mod:`losses._common`).

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


@register_loss(
    "wbce",
    batch_coupled=True,
    reference="Wang et al. 2017, ChestX-ray8 (CVPR)",
    peer="torch.nn.functional.binary_cross_entropy_with_logits(pos_weight=...) with the batch's weights",
)
class WeightedBCELoss(FunctionalLoss, fn=wbce_loss):
    """Module form of :func:`wbce_loss`."""
