"""Distribution-Balanced loss (Wu et al., ECCV 2020): re-balanced weights and negative-tolerant
regularisation on sigmoid BCE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ._common import FunctionalLoss, focusing_weight, prepare, reduce_loss, softplus
from ._registry import register_loss


def db_statistics(
    class_counts: Tensor | np.ndarray | Sequence[float], num_samples: int
) -> tuple[Tensor, Tensor]:
    """(1/n_c, logit of the class prior log(p_c / (1 − p_c))), both (C,) float64, with
    n_c clamped to [1, N − 1] (a class never or always positive would give an infinite term)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).detach().reshape(-1)
    if isinstance(num_samples, bool) or not (
        isinstance(num_samples, (int, np.integer)) and num_samples >= 2
    ):
        raise ValueError(
            f"Expected argument `num_samples` to be an int >= 2 but got {num_samples!r}"
        )
    if not bool(torch.isfinite(counts).all()) or bool(
        ((counts < 0) | (counts > num_samples)).any()
    ):
        raise ValueError(
            f"Expected argument `class_counts` to be counts in [0, num_samples={num_samples}] but "
            f"got {counts.tolist() if counts.numel() <= 20 else tuple(counts.shape)}"
        )
    counts = counts.clamp(1.0, num_samples - 1.0)
    return 1.0 / counts, -torch.log(num_samples / counts - 1.0)


def db_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    class_counts: Tensor | np.ndarray | Sequence[float],
    num_samples: int,
    map_alpha: float = 0.1,
    map_beta: float = 10.0,
    map_mu: float = 0.2,
    neg_scale: float = 2.0,
    init_bias: float = 0.05,
    focal_gamma: float = 2.0,
    focal_balance: float = 2.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c r̂_c [y_c ℓ⁺(z_c + ν_c) + (1 − y_c) ℓ⁻(z_c + ν_c)].

    Re-balanced weight: r_c = (1/n_c) / Σ_{j∈P} (1/n_j) (class-level over instance-level
    sampling probability of the sample), smoothed r̂ = α + σ(β(r − μ)); a sample without
    positives takes 1 + α. Negative-tolerant regularisation: the logits are shifted by the
    class-prior bias ν_c = κ·logit(p_c)/λ (p_c = n_c/N) and the negatives use a scaled logit,
    ℓ⁺(x) = softplus(−x), ℓ⁻(x) = softplus(λx)/λ. With γ > 0 (the DB configuration) each term
    is multiplied by the focal factor s·(1 − p_t)^γ: σ(−x)^γ for positives, σ(λx)^γ for
    negatives.

    Source: Wu, Huang, Liu, Wang, Lin 2020, "Distribution-Balanced Loss for Multi-Label
    Classification in Long-Tailed Datasets" (ECCV, arXiv:2007.09654), re-balanced weighting
    and negative-tolerant regularisation, as configured in the official code
    (github.com/wutong16/DistributionBalancedLoss, ``mllt/models/losses/resample_loss.py``,
    ``ResampleLoss`` with ``reweight_func='rebalance'``, focal, ``logit_reg`` neg_scale λ=2 and
    init_bias κ=0.05; map α=0.1, β=10, μ=0.2). Peer: timm 1.0.31
    ``timm.loss.DistributionBalancedLoss`` (same defaults; value and gradient in
    ``tests/losses/test_peers.py``); checked against an independent float64 transcription
    (``tests/losses/reference.py``). The bias and the scale follow the official code
    (``logits += -log(N/n − 1)·κ/λ``, then ×λ on the negatives with weight ÷λ). Deviations,
    on purpose: counts clamped to [1, N−1] (as timm; the official code divides by zero for an
    absent class); softplus exact in every range; focal factors with a finite gradient where
    their base is 0; the package's reductions ("mean" is timm's "mean", the official scale);
    bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        class_counts: (C,) training-set positives per class (``stats["class_counts"]``).
        num_samples: training-set size N (``stats["num_samples"]``).
        map_alpha, map_beta, map_mu: α, β, μ of the smoothing of the re-balanced weight.
        neg_scale: λ of the negative-tolerant regularisation (1 disables the scaling).
        init_bias: κ of the class-prior bias (0 disables it).
        focal_gamma: γ of the focal factor (0 disables it, and ``focal_balance`` with it).
        focal_balance: s, the constant scale of the focal terms.
    """
    if not neg_scale > 0:
        raise ValueError(f"Expected argument `neg_scale` to be > 0 but got {neg_scale}")
    z, y = prepare(logits, targets, validate=validate)
    freq_inv, prior_logit = db_statistics(class_counts, num_samples)
    if freq_inv.numel() != z.shape[1]:
        raise ValueError(
            f"Expected argument `class_counts` to have shape ({z.shape[1]},) matching the logits' "
            f"classes but got ({freq_inv.numel()},)"
        )
    freq_inv = freq_inv.to(device=z.device, dtype=z.dtype)
    bias = (prior_logit * init_bias / neg_scale).to(device=z.device, dtype=z.dtype)
    repeat = (y * freq_inv).sum(dim=1, keepdim=True)  # Σ_{j∈P} 1/n_j
    ratio = freq_inv / torch.where(repeat > 0, repeat, torch.ones_like(repeat))
    weight = (
        torch.where(repeat > 0, torch.sigmoid(map_beta * (ratio - map_mu)), torch.ones_like(ratio))
        + map_alpha
    )
    x = z + bias
    pos = softplus(-x)
    neg = softplus(neg_scale * x) / neg_scale
    if focal_gamma > 0:
        pos = pos * focusing_weight(torch.sigmoid(-x), focal_gamma) * focal_balance
        neg = neg * focusing_weight(torch.sigmoid(neg_scale * x), focal_gamma) * focal_balance
    per_class = weight * (y * pos + (1 - y) * neg)  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "db",
    needs=("class_counts", "num_samples"),
    reference="Wu et al. 2020, Distribution-Balanced Loss for Multi-Label Classification in Long-Tailed Datasets (ECCV)",
    peer="timm.loss.DistributionBalancedLoss",
)
class DistributionBalancedLoss(FunctionalLoss, fn=db_loss):
    """Module form of :func:`db_loss`; ``class_counts`` is kept as a buffer."""
