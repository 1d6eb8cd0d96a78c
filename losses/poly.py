"""Poly-1 (Leng et al., ICLR 2022): BCE (or focal loss) plus ε·(1 − p_t)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import FunctionalLoss, focusing_weight, prepare, reduce_loss
from ._registry import register_loss


def poly_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    epsilon: float = 2.0,
    gamma: float = 0.0,
    alpha: float | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample (1/C) Σ_c w_c [(1−p_t)^γ·BCE + ε·(1−p_t)^{γ+1}], p_t = σ(z) if y=1 else 1−σ(z).

    With γ = 0 (the default) it is Poly-1 on BCE, BCE + ε(1 − p_t); with γ > 0 Poly-1 on the
    focal loss; w_c = α for positives and 1 − α for negatives when ``alpha`` is set.

    Source: Leng, Tan, Liu, Cubuk, Shi, Cheng, Anguelov 2022, "PolyLoss: A Polynomial
    Expansion Perspective of Classification Loss Functions" (ICLR, arXiv:2204.12511), Poly-1
    L = −log p_t + ε(1 − p_t) and the focal form FL + ε(1 − p_t)^{γ+1}; official code: none
    released with the paper (TensorFlow snippets in its appendix). Peer: timm 1.0.31
    ``timm.loss.PolyBinaryCrossEntropy`` (its defaults ε=2, γ=0, α=None; value and gradient in
    ``tests/losses/test_peers.py``); checked against an independent float64 transcription
    (``tests/losses/reference.py``). Deviations: 1 − p_t from σ(∓z) (precise where p is close
    to 1; timm: 1 − (y p + (1−y)(1−p))); focusing weights with a finite gradient where their
    base is 0; bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        epsilon: ε, the coefficient of the leading polynomial term (0: plain BCE / focal).
        gamma: focusing exponent γ (0: no focal term).
        alpha: positive/negative balance weight in [0, 1], or None.
    """
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"Expected argument `alpha` to be in [0, 1] or None but got {alpha}")
    z, y = prepare(logits, targets, validate=validate)
    one_minus_pt = y * torch.sigmoid(-z) + (1 - y) * torch.sigmoid(z)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    if gamma:
        focal = focusing_weight(one_minus_pt, gamma)
        per_class = bce * focal + epsilon * one_minus_pt * focal
    else:
        per_class = bce + epsilon * one_minus_pt
    if alpha is not None:
        per_class = per_class * (y * alpha + (1 - y) * (1 - alpha))
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "poly",
    reference="Leng et al. 2022, PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions (ICLR)",
    peer="timm.loss.PolyBinaryCrossEntropy",
)
class PolyLoss(FunctionalLoss, fn=poly_loss):
    """Module form of :func:`poly_loss`."""
