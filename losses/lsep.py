"""Log-sum-exp pairwise ranking loss, LSEP (Li et al., CVPR 2017)."""

from __future__ import annotations

from torch import Tensor

from ._common import (
    FunctionalLoss,
    masked_logsumexp,
    pair_logsumexp,
    per_sample_loss,
    softplus,
)
from ._registry import register_loss


def lsep_factorised(z: Tensor, y: Tensor) -> Tensor:
    """softplus(LSE_N(z) + LSE_P(−z)) per sample; z, y: (B, C) in the compute dtype → (B,)."""
    return softplus(masked_logsumexp(z, y == 0, dim=1) + masked_logsumexp(-z, y == 1, dim=1))


def lsep_naive(z: Tensor, y: Tensor) -> Tensor:
    """log(1 + Σ_{p∈P} Σ_{n∈N} e^{z_n − z_p}) per sample through a (B, C, C) tensor → (B,)."""
    return softplus(pair_logsumexp(z, y == 1, y == 0))


def lsep_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample log(1 + Σ_{p,n} e^{z_n − z_p}); 0 if P or N is empty.

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).
    """
    return per_sample_loss(lsep_factorised, logits, targets, reduction, validate)


@register_loss(
    "lsep",
    reference="Li et al. 2017, Improving Pairwise Ranking for Multi-label Image Classification (CVPR)",
)
class LSEPLoss(FunctionalLoss, fn=lsep_loss):
    """Module form of :func:`lsep_loss`."""
