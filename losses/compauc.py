"""Compositional AUC (Yuan et al., ICLR 2022): BCE and AUC-M steps on an explicit schedule,
trained with PDSCA."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_reduction, prepare
from ._registry import register_loss
from .aucm import AUCState, as_state, aucm_per_class, check_auc_options

PHASES = ("ce", "auc")


def compauc_phase(step: int, k: int) -> str:
    """The phase of training step ``step``: k "ce" steps, then k "auc" steps, repeated."""
    return PHASES[(step // k) % 2]


def compauc_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    a: Tensor,
    b: Tensor,
    alpha: Tensor,
    step: int,
    k: int = 1,
    margin: float = 1.0,
    version: str = "v1",
    imratio: Sequence[float] | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """The loss of training step ``step``: BCE in a "ce" phase, the mean AUC-M over classes in
    an "auc" phase (:func:`compauc_phase`: k steps of each, starting with "ce").

    The schedule is explicit: the step is the training loop's global step (the
    ``on_step_start`` hook), so the phase follows the optimizer steps and nothing else.
    Coupled across the batch in its "auc" phase: ``reduction="none"`` is refused, ``"sum"`` is
    B times ``"mean"``.

    Source: Yuan, Guo, Chawla, Yang 2022, "Compositional Training for End-to-End Deep AUC
    Maximization" (ICLR), min_w L_AUC(w − η∇L_CE(w)), solved by PDSCA (``losses.PDSCA``),
    whose inner step is the "ce" phase and outer step the "auc" phase; official code:
    github.com/Optimization-AI/LibAUC (``libauc.losses.CompositionalAUCLoss``,
    ``libauc.optimizers.PDSCA``). Peer: LibAUC 2.0.1 per class in each phase
    (``tests/losses/test_auc_peers.py``); checked against an independent float64 transcription
    (``tests/losses/reference.py``). Deviations, on purpose: LibAUC switches phases on a
    counter of its own calls (``self.step``, advanced by every call, validation included), so
    an evaluation pass shifts the training schedule; here the phase is a function of the
    training step. The BCE phase is BCE with logits averaged over all entries (LibAUC:
    ``binary_cross_entropy`` of the sigmoid scores, the same value, less precise for
    saturated scores). Multi-label as the mean over classes, a class absent from the batch
    contributing 0 (as :func:`losses.aucm.aucm_loss`). bf16 logits are clamped to ±65504
    (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        a, b, alpha: AUC-M's state (see :func:`losses.aucm.aucm_loss`).
        step: the training step (0-based) whose loss this is.
        k: steps per phase.
        margin, version, imratio: AUC-M's (see :func:`losses.aucm.aucm_loss`).
    """
    check_reduction(reduction, ("mean", "sum"))
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"Expected argument `k` to be an int >= 1 but got {k!r}")
    z, y = prepare(logits, targets, validate=validate)
    p = check_auc_options(margin, version, imratio, z.shape[1])
    a, b, alpha = (as_state(n, v, z) for n, v in (("a", a), ("b", b), ("alpha", alpha)))
    if compauc_phase(step, k) == "ce":
        total = F.binary_cross_entropy_with_logits(z, y)
    else:
        total = aucm_per_class(torch.sigmoid(z), y, a, b, alpha, margin, version, p).mean()
    return total * z.shape[0] if reduction == "sum" else total


@register_loss(
    "compauc",
    needs=("num_classes",),
    batch_coupled=True,
    reductions=("mean", "sum"),
    stateful=True,
    optimizer="pdsca",
    param_lr=1.0,
    param_weight_decay=False,
    composable=False,
    reference="Yuan et al. 2022, Compositional Training for End-to-End Deep AUC Maximization (ICLR)",
    peer="libauc.losses.CompositionalAUCLoss (per class, explicit step)",
)
class CompositionalAUCLoss(AUCState, fn=compauc_loss):
    """Module form of :func:`compauc_loss`: AUC-M's state plus the training step (set by
    ``on_step_start``); trained with PDSCA (``losses.PDSCA``), whose options it carries. It
    must be trained alone (not a term of a weighted sum): PDSCA's step depends on its phase.

    Args:
        num_classes: C (the registry takes it from the training set's class counts).
        epoch_decay, clip_value: PDSCA's (as PESG's; LibAUC's defaults).
        beta1, beta2, inner_lr_scale: PDSCA's (see ``losses.PDSCA``; LibAUC's defaults).
        k, margin, version, imratio, reduction, validate: as :func:`compauc_loss`.
    """

    state_names = ("a", "b", "alpha", "step")
    init_only = ("num_classes", "epoch_decay", "clip_value", "beta1", "beta2", "inner_lr_scale")

    def __init__(self, *, num_classes: int, epoch_decay: float = 2e-3,
                 clip_value: float | None = 1.0, beta1: float = 0.99, beta2: float = 0.999,
                 inner_lr_scale: float = 1.0, **options) -> None:  # fmt: skip
        super().__init__(num_classes=num_classes, epoch_decay=epoch_decay,
                         clip_value=clip_value, **options)  # fmt: skip
        self._optimizer_options.update(beta1=beta1, beta2=beta2, inner_lr_scale=inner_lr_scale)

    def state_kwargs(self) -> dict:
        return {**super().state_kwargs(), "step": self.step}

    def phase(self) -> str:
        """The phase of the current training step ("ce" or "auc")."""
        return compauc_phase(self.step, self.options["k"])
