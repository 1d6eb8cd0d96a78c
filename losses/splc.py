"""SPLC, self-paced loss correction for missing labels (Zhang et al. 2021, same paper as Hill)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import focusing_weight, prepare, reduce_loss
from ._registry import register_loss
from ._stateful import StatefulLoss


def splc_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    epoch: int,
    tau: float = 0.6,
    change_epoch: int = 1,
    margin: float = 1.0,
    gamma: float = 2.0,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Per sample, mean over classes of the focal-margin loss with self-paced label correction.

    z' = z − m on the positives (z elsewhere); from epoch ``change_epoch`` on, a negative whose
    σ(z') > τ is taken as a positive (a missing label); then, with y' the corrected labels and
    p = σ(z'), −[y' (1−p)^γ log p + (1−y') p^γ log(1−p)]. Before ``change_epoch`` (and with
    τ ≥ 1) it is the focal-margin loss of the same paper.

    Source: Zhang, Wang, Zhang, Wu, Zhao, Zhang 2021, "Simple and Robust Loss Design for
    Multi-Label Learning with Missing Labels" (arXiv:2112.07368), SPLC with the focal-margin
    loss (τ=0.6, change_epoch=1, m=1, γ=2); official code: github.com/xinyu1205/robust-loss-mlml,
    ``src/loss_functions/losses.py`` (``SPLC``, which takes the epoch as a call argument). No
    installed peer; checked against an independent float64 transcription
    (``tests/losses/reference.py``). The epoch is the training loop's (0-based, as the official
    training loop's), set by the ``on_epoch_start`` hook; the correction has no gradient (a
    comparison), the focusing weights have (as in the official code). Deviations, on purpose:
    the class mean per sample, not the official sum over batch and classes (package
    convention); focusing weights with a finite gradient where their base is 0; bf16 logits
    are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        epoch: the training epoch (0-based) whose loss this is.
        tau: probability threshold above which a negative is corrected to a positive.
        change_epoch: first epoch with the correction.
        margin: m subtracted from the positives' logits.
        gamma: focusing exponent.
    """
    if not 0 <= tau <= 1:
        raise ValueError(f"Expected argument `tau` to be in [0, 1] but got {tau}")
    z, y = prepare(logits, targets, validate=validate)
    shifted = torch.where(y == 1, z - margin, z)
    if epoch >= change_epoch:
        y = torch.where(torch.sigmoid(shifted) > tau, torch.ones_like(y), y)
    pos = -focusing_weight(torch.sigmoid(-shifted), gamma) * F.logsigmoid(shifted)
    neg = -focusing_weight(torch.sigmoid(shifted), gamma) * F.logsigmoid(-shifted)
    per_class = y * pos + (1 - y) * neg  # (B, C)
    return reduce_loss(per_class.mean(dim=1), reduction)


@register_loss(
    "splc",
    stateful=True,
    reference="Zhang et al. 2021, Simple and Robust Loss Design for Multi-Label Learning with Missing Labels (arXiv:2112.07368)",
)
class SPLCLoss(StatefulLoss, fn=splc_loss):
    """Module form of :func:`splc_loss`; the epoch comes from the ``on_epoch_start`` hook."""

    state_names = ("epoch",)

    def state_kwargs(self) -> dict:
        return {"epoch": self.epoch}
