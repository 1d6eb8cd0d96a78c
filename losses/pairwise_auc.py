"""Pairwise AUC surrogate with the squared hinge (the stateless AUC loss; LibAUC's
``PairwiseAUCLoss(surr_loss="squared_hinge")``), per class over the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import FunctionalLoss, check_reduction, prepare
from ._registry import register_loss

# B·B·C above which the (B, B, C) pair tensor is replaced by the sorted form
_PAIR_BUDGET = 2**22


def pairwise_auc_naive(h: Tensor, y: Tensor, margin: float) -> Tensor:
    """(C,) mean over the pairs (p ∈ P_c, n ∈ N_c) of max(0, m − (h_p − h_n))², through a
    (B, B, C) tensor; 0 for a class without positives or negatives."""
    pos, neg = y == 1, y == 0
    diff = h[:, None, :] - h[None, :, :]  # (B_p, B_n, C): h_p − h_n
    pairs = pos[:, None, :] & neg[None, :, :]
    hinge = (margin - diff).clamp(min=0) ** 2
    total = torch.where(pairs, hinge, torch.zeros_like(hinge)).sum(dim=(0, 1))
    return total / (pos.sum(dim=0) * neg.sum(dim=0)).clamp(min=1)


def pairwise_auc_sorted(h: Tensor, y: Tensor, margin: float) -> Tensor:
    """Same as :func:`pairwise_auc_naive` in O(B log B) per class: with u = m − h_p, a pair is
    active when h_n > h_p − m, and Σ_active (u + h_n)² = j·u² + 2u·Σh_n + Σh_n² over the j
    active negatives, read from suffix sums of the sorted negative scores."""
    neg = y == 0
    key = torch.where(neg, h, torch.full_like(h, -torch.inf)).t().contiguous()  # (C, B)
    order = key.argsort(dim=1)
    sorted_key = key.gather(1, order)
    s = torch.where(neg, h, torch.zeros_like(h)).t().gather(1, order)  # negatives' scores, sorted
    zero = torch.zeros_like(s[:, :1])
    suffix1 = torch.cat([s.flip(1).cumsum(1).flip(1), zero], dim=1)  # Σ_{k ≥ i} s_k, (C, B+1)
    suffix2 = torch.cat([(s * s).flip(1).cumsum(1).flip(1), zero], dim=1)
    u = (margin - h).t().contiguous()  # (C, B)
    threshold = (h - margin).t().contiguous()
    first = torch.searchsorted(sorted_key, threshold, right=True)  # first active index
    count = (h.shape[0] - first).to(h.dtype)
    per_pair = count * u * u + 2 * u * suffix1.gather(1, first) + suffix2.gather(1, first)
    pos = (y == 1).t()
    total = torch.where(pos, per_pair, torch.zeros_like(per_pair)).sum(dim=1)
    return total / (pos.sum(dim=1) * neg.t().sum(dim=1)).clamp(min=1)


def pairwise_auc_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    margin: float = 1.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Mean over classes of (1/(|P_c||N_c|)) Σ_{p∈P_c, n∈N_c} max(0, m − (σ(z_p) − σ(z_n)))².

    Per class c, over the batch: every positive image's score should exceed every negative
    image's by the margin m. A class with no positive or no negative in the batch contributes 0
    (and counts in the class mean). Coupled across the batch: ``reduction="none"`` is refused
    and ``"sum"`` is B times ``"mean"``. With m ≥ 1 (the default) no pair of sigmoid scores
    reaches the hinge and the surrogate is the square loss.

    Source: the pairwise square-hinge AUC surrogate (e.g. Gao & Zhou 2015, "On the consistency
    of AUC pairwise optimization", IJCAI); as in Yuan et al. 2023, "LibAUC: A Deep Learning
    Library for X-Risk Optimization" (KDD), code: github.com/Optimization-AI/LibAUC,
    ``libauc.losses.PairwiseAUCLoss(surr_loss="squared_hinge", hparam=m)`` (single task; peer
    per class, ``tests/losses/test_auc_peers.py``). Checked against an independent float64
    transcription (``tests/losses/reference.py``). Deviations, on purpose: a class absent from
    the batch contributes 0 (LibAUC asserts that the batch has a positive); multi-label as the
    mean over classes; large batches use an exact sorted form (O(B log B) per class, no B×B
    tensor). bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        margin: m of the squared hinge, on the scores σ(z) ∈ [0, 1].
    """
    check_reduction(reduction, ("mean", "sum"))
    if not margin >= 0:
        raise ValueError(f"Expected argument `margin` to be >= 0 but got {margin}")
    z, y = prepare(logits, targets, validate=validate)
    h = torch.sigmoid(z)
    b, c = z.shape
    per_class = (pairwise_auc_naive if b * b * c <= _PAIR_BUDGET else pairwise_auc_sorted)(
        h, y, margin
    )
    total = per_class.mean()
    return total * b if reduction == "sum" else total


@register_loss(
    "pairwise_auc",
    batch_coupled=True,
    reductions=("mean", "sum"),
    reference="Gao & Zhou 2015, On the Consistency of AUC Pairwise Optimization (IJCAI); squared hinge as in LibAUC",
    peer="libauc.losses.PairwiseAUCLoss(surr_loss='squared_hinge') (per class)",
)
class PairwiseAUCLoss(FunctionalLoss, fn=pairwise_auc_loss):
    """Module form of :func:`pairwise_auc_loss`."""
