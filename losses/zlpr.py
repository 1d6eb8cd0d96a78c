"""ZLPR, the multi-label categorical cross-entropy (Su et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    FunctionalLoss,
    masked_logsumexp,
    pair_logsumexp,
    per_sample_loss,
    softplus,
)
from ._registry import register_loss


def zlpr_factorised(z: Tensor, y: Tensor) -> Tensor:
    """softplus(LSE_N(z)) + softplus(LSE_P(−z)) per sample; z, y: (B, C) → (B,)."""
    return softplus(masked_logsumexp(z, y == 0, dim=1)) + softplus(
        masked_logsumexp(-z, y == 1, dim=1)
    )


def zlpr_naive(z: Tensor, y: Tensor) -> Tensor:
    """Pairwise form log Σ_{n∈N∪{0}} Σ_{p∈P∪{0}} e^{z_n − z_p} with a zero-logit threshold class.

    (1 + Σ_n e^{z_n})(1 + Σ_p e^{−z_p}) expands to that double sum; (B, C+1, C+1) tensor → (B,).
    """
    zero = torch.zeros_like(z[:, :1])
    on = torch.ones_like(zero, dtype=torch.bool)
    z_aug = torch.cat([z, zero], dim=1)
    return pair_logsumexp(z_aug, torch.cat([y == 1, on], dim=1), torch.cat([y == 0, on], dim=1))


def zlpr_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample log(1 + Σ_{n∈N} e^{z_n}) + log(1 + Σ_{p∈P} e^{−z_p}) (threshold at logit 0).

    Source: Su et al. 2022, arXiv:2208.02955, the ZLPR loss as written above; the authors'
    code is ``multilabel_categorical_crossentropy`` in github.com/bojone/bert4keras (Keras,
    not installed: not run here). Peer: timm 1.0.31 ``timm.loss.ZlprLoss`` (batch mean only;
    compared row by row, value and gradient, in ``tests/losses/test_peers.py``); checked
    against an independent float64 transcription (``tests/losses/reference.py``) and the
    pairwise form with a zero-logit threshold class. Deviations: none in value (the official code masks with −1e12 added to
    the logits, here the sets are exact, which only matters for logits beyond ±1e12); bf16
    logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).
    """
    return per_sample_loss(zlpr_factorised, logits, targets, reduction, validate)


@register_loss(
    "zlpr",
    reference="Su et al. 2022, ZLPR: A Novel Loss for Multi-label Classification (arXiv:2208.02955)",
    peer="timm.loss.ZlprLoss",
)
class ZLPRLoss(FunctionalLoss, fn=zlpr_loss):
    """Module form of :func:`zlpr_loss`."""
