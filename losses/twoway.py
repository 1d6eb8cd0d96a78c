"""Two-way multi-label loss (Kobayashi, CVPR 2023): a sample-wise and a class-wise softmax term."""

from __future__ import annotations

from torch import Tensor

from ._common import FunctionalLoss, check_reduction, masked_logsumexp, prepare, softplus
from ._registry import register_loss


def _relative_term(z: Tensor, y: Tensor, dim: int, t_pos: float, t_neg: float) -> Tensor:
    """softplus(T_n·LSE_N(z/T_n) + T_p·LSE_P(−z/T_p)) along ``dim``, with its has-a-positive mask."""
    lse_neg = masked_logsumexp(z / t_neg, y == 0, dim=dim) * t_neg
    lse_pos = masked_logsumexp(-z / t_pos, y == 1, dim=dim) * t_pos
    has_pos = (y == 1).any(dim=dim)
    return softplus(lse_neg + lse_pos), has_pos


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def twoway_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    t_pos: float = 4.0,
    t_neg: float = 1.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Sample term averaged over samples with a positive + class term averaged over classes
    with a positive in the batch; each term is softplus(T_n·LSE_N(z/T_n) + T_p·LSE_P(−z/T_p)).

    The loss is coupled across the batch, so there is no per-sample value: ``reduction="none"``
    is refused and ``"sum"`` is B times ``"mean"`` (keeping sum = B·mean as for other losses).

    Source: Kobayashi 2023 (CVPR), the two-way loss (sample-wise plus class-wise relative
    term, T_p=4, T_n=1); official code: github.com/tk1980/TwoWayMultiLabelLoss,
    ``utils/criterion.py`` (``TwoWayLoss``). Peer: timm 1.0.31 ``timm.loss.TwoWayLoss`` (value
    and gradient in ``tests/losses/test_peers.py``); checked against an independent float64
    transcription (``tests/losses/reference.py``). Deviations, on purpose: the official code
    masks a set by adding −100 to the logits outside it, so an empty set is not exactly −∞ (a
    sample with no negatives gets softplus(max z − 100 + ...), a small positive value,
    instead of 0) and far-out logits leak through the mask; timm fills −1e4, so it agrees
    with ours up to |logit| ≈ 1e4 and differs beyond (logits below its fill value leak, see
    ``test_twoway_differs_from_timm_only_past_its_mask_value``); here the sets are exact
    (masked log-sum-exp), so a term over an empty set is 0 for any logits. Batch coupling as
    in the paper (the class term runs over the batch). bf16 logits are clamped to ±65504
    (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        t_pos: temperature T_p of the positives.
        t_neg: temperature T_n of the negatives.
    """
    check_reduction(reduction, ("mean", "sum"))
    for arg, value in (("t_pos", t_pos), ("t_neg", t_neg)):
        if not value > 0:  # 0 divides by zero; < 0 turns the soft maximum into a soft minimum
            raise ValueError(f"Expected argument `{arg}` to be a temperature > 0 but got {value}")
    z, y = prepare(logits, targets, validate=validate)
    sample = _masked_mean(*_relative_term(z, y, 1, t_pos, t_neg))  # over samples
    klass = _masked_mean(*_relative_term(z, y, 0, t_pos, t_neg))  # over classes
    total = sample + klass
    return total * z.shape[0] if reduction == "sum" else total


@register_loss(
    "twoway",
    batch_coupled=True,
    reductions=("mean", "sum"),
    reference="Kobayashi 2023, Two-way Multi-Label Loss (CVPR)",
    peer="timm.loss.TwoWayLoss",
)
class TwoWayLoss(FunctionalLoss, fn=twoway_loss):
    """Module form of :func:`twoway_loss`."""
