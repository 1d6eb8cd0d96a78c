"""Class-balanced BCE (Cui et al. 2019): per-class weights from effective numbers of samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, prepare, reduce_loss
from ._registry import register_loss


def class_balanced_weights(
    class_counts: Tensor | np.ndarray | Sequence[float], beta: float
) -> Tensor:
    """w_c = (1−β)/(1−β^{n_c}), normalised so Σ_c w_c = C; (C,) float64.

    A class with no training positives is weighted as if it had one (its effective number
    would otherwise be 0 and its weight infinite).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64).detach()
    if counts.ndim != 1 or not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError(
            "Expected argument `class_counts` to be a 1-D sequence of finite counts >= 0 but got "
            f"{counts.tolist() if counts.numel() <= 20 else tuple(counts.shape)}"
        )
    if not 0 <= beta < 1:
        raise ValueError(f"Expected argument `beta` to be in [0, 1) but got {beta}")
    weights = (1 - beta) / (1 - beta ** counts.clamp(min=1))
    return weights * (counts.numel() / weights.sum())


def cb_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    class_counts: Tensor | np.ndarray | Sequence[float],
    beta: float = 0.999,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c w_c [softplus(z_c) − y_c z_c], w from :func:`class_balanced_weights`.

    The class-balanced term of Cui et al. (weight (1−β)/(1−β^{n_y}), here per class of a
    multi-label problem) on sigmoid cross-entropy. Peer: ``torch.nn.MultiLabelSoftMarginLoss``
    with ``weight=w`` is the same per-sample loss, and timm 1.0.31's
    ``compute_class_weights(..., "effective_num")`` the same weights (both checked by
    ``tests/losses/test_peers.py``).
    Official code: github.com/richardaecn/class-balanced-loss (TensorFlow, single-label
    softmax / sigmoid over one-hot labels; not run here). The weights are normalised to sum to
    C as in the paper. Deviations: n_c counts a class's training positives (multi-label: a
    film counts for each of its findings), and a class with none counts as one (its weight
    would be infinite); bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        class_counts: (C,) training-set positives per class (``stats["class_counts"]``).
        beta: effective-number hyper-parameter β.
    """
    z, y = prepare(logits, targets, validate=validate)
    weights = class_balanced_weights(class_counts, beta)
    if weights.numel() != z.shape[1]:
        raise ValueError(
            f"Expected argument `class_counts` to have shape ({z.shape[1]},) matching the logits' "
            f"classes but got ({weights.numel()},)"
        )
    weights = weights.to(device=z.device, dtype=z.dtype)
    per_class = weights * F.binary_cross_entropy_with_logits(z, y, reduction="none")  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "cb",
    needs=("class_counts",),
    reference="Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples (CVPR)",
    peer="torch.nn.MultiLabelSoftMarginLoss(weight=class_balanced_weights(...)); "
    "timm.loss.class_weights.compute_class_weights('effective_num')",
)
class ClassBalancedLoss(FunctionalLoss, fn=cb_loss):
    """Module form of :func:`cb_loss`; ``class_counts`` is kept as a buffer."""
