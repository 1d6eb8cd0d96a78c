"""Multi-label AUC-M, the AUC-margin loss (Yuan et al., ICCV 2021), trained with PESG."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._common import check_reduction, prepare
from ._registry import register_loss
from ._stateful import StatefulLoss

VERSIONS = ("v1", "v2")


def check_auc_options(margin: float, version: str, imratio, num_classes: int) -> Tensor | None:
    """Validate AUC-M's options; ``imratio`` as a (C,) float64 tensor (or None)."""
    if version not in VERSIONS:
        raise ValueError(
            f"Expected argument `version` to be one of {list(VERSIONS)} but got {version!r}"
        )
    if not margin >= 0:
        raise ValueError(f"Expected argument `margin` to be >= 0 but got {margin}")
    if imratio is None:
        return None
    p = torch.as_tensor(imratio, dtype=torch.float64).detach().reshape(-1)
    if p.numel() != num_classes or bool(((p < 0) | (p > 1)).any()):
        raise ValueError(
            f"Expected argument `imratio` to be {num_classes} positive ratios in [0, 1] (one per "
            f"class) but got {p.tolist() if p.numel() <= 20 else tuple(p.shape)}"
        )
    return p


def as_state(name: str, value, like: Tensor) -> Tensor:
    """A (C,) state argument (tensor or sequence) in the dtype and on the device of ``like``
    (B, C); a tensor keeps its autograd graph."""
    num_classes = like.shape[1]
    if not isinstance(value, Tensor):
        value = torch.as_tensor(value, dtype=like.dtype)
    if value.shape != (num_classes,):
        raise ValueError(
            f"Expected argument `{name}` to have shape ({num_classes},) matching the logits' "
            f"classes but got {tuple(value.shape)}"
        )
    return value.to(device=like.device, dtype=like.dtype)


def aucm_per_class(
    h: Tensor,
    y: Tensor,
    a: Tensor,
    b: Tensor,
    alpha: Tensor,
    margin: float,
    version: str,
    imratio: Tensor | None,
) -> Tensor:
    """AUC-M of each class over the batch; h: (B, C) scores in [0, 1], y: (B, C) → (C,).

    v1 (the paper's, with p the positive ratio: the batch's, or ``imratio``):
    (1−p)·E[(h−a)²·1{y=1}] + p·E[(h−b)²·1{y=0}] + 2α(p(1−p)m + E[p·h·1{y=0} − (1−p)·h·1{y=1}])
    − p(1−p)α², the expectations over the whole batch.
    v2 (prior-free): E[(h−a)²|y=1] + E[(h−b)²|y=0] + 2α(m + E[h|y=0] − E[h|y=1]) − α².
    A class with no positive or no negative in the batch gives exactly 0 (value and gradient).
    """
    pos, neg = y, 1 - y
    n_pos, n_neg = pos.sum(dim=0), neg.sum(dim=0)
    present = (n_pos > 0) & (n_neg > 0)
    sq_pos, sq_neg = (h - a) ** 2 * pos, (h - b) ** 2 * neg
    if version == "v1":
        p = n_pos / h.shape[0] if imratio is None else imratio.to(device=h.device, dtype=h.dtype)
        q = p * (1 - p)
        value = (
            (1 - p) * sq_pos.mean(dim=0)
            + p * sq_neg.mean(dim=0)
            + 2 * alpha * (q * margin + (p * h * neg - (1 - p) * h * pos).mean(dim=0))
            - q * alpha**2
        )
    else:
        mp, mn = n_pos.clamp(min=1), n_neg.clamp(min=1)
        value = (
            sq_pos.sum(dim=0) / mp
            + sq_neg.sum(dim=0) / mn
            + 2 * alpha * (margin + (h * neg).sum(dim=0) / mn - (h * pos).sum(dim=0) / mp)
            - alpha**2
        )
    return torch.where(present, value, torch.zeros_like(value))


def aucm_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    a: Tensor,
    b: Tensor,
    alpha: Tensor,
    margin: float = 1.0,
    version: str = "v1",
    imratio: Sequence[float] | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Mean over the C classes of the AUC-margin objective of each class on the scores σ(z).

    Per class (:func:`aucm_per_class`), with a, b the learnable estimates of the mean score of
    the positives and of the negatives and α ≥ 0 the dual variable of the margin constraint,
    the min-max objective min_{w,a,b} max_{α≥0} f of Yuan et al. (ICCV 2021; v1) or LibAUC's
    prior-free form (v2). The loss is coupled across the batch (expectations over it): no
    per-sample value (``reduction="none"`` refused), ``"sum"`` is B times ``"mean"``.

    Source: Yuan, Yan, Sonka, Yang 2021, "Large-scale Robust Deep AUC Maximization: A New
    Surrogate Loss and Empirical Studies on Medical Image Classification" (ICCV,
    arXiv:2012.03173), the AUC-M objective with the square-loss surrogate and margin m; official
    code: github.com/Optimization-AI/LibAUC (``libauc.losses.MultiLabelAUCMLoss``,
    ``AUCMLoss``). Peers: MONAI 1.6.1 ``monai.losses.AUCMLoss`` per class (value and gradient
    in logits, a and b), LibAUC 2.0.1 where it is right (``tests/losses/test_auc_peers.py``);
    checked against an independent float64 transcription (``tests/losses/reference.py``).
    Deviations, on purpose: the margin is honoured in v1 (LibAUC's multi-label v1 drops it:
    LibAUC#35); a class with no positive or no negative in the batch contributes exactly 0
    (LibAUC's v2 gives NaN, 0/0; MONAI's v2 a non-zero value from the class that is there),
    and still counts in the class mean; α is not a gradient variable (a buffer, moved by
    PESG's closed-form ascent; MONAI makes it an ``nn.Parameter`` that any optimizer built
    from ``.parameters()`` would descend on, LibAUC plain tensors no optimizer sees); the
    batch's positive ratio p is not stored in the module (LibAUC overwrites ``self.p`` on
    every call, validation included). bf16 logits are clamped to ±65504
    (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).

    Args:
        a, b: (C,) estimates of the mean score of positives / negatives (learnable; tensors,
            or sequences of floats).
        alpha: (C,) dual variables α ≥ 0.
        margin: m, the margin between the positive and the negative mean score.
        version: "v1" (the paper's, with the class prior p) or "v2" (prior-free).
        imratio: v1 only: the positive ratio p of each class; None takes the batch's.
    """
    check_reduction(reduction, ("mean", "sum"))
    z, y = prepare(logits, targets, validate=validate)
    p = check_auc_options(margin, version, imratio, z.shape[1])
    a, b, alpha = (as_state(n, v, z) for n, v in (("a", a), ("b", b), ("alpha", alpha)))
    per_class = aucm_per_class(torch.sigmoid(z), y, a, b, alpha, margin, version, p)
    total = per_class.mean()
    return total * z.shape[0] if reduction == "sum" else total


class AUCState(StatefulLoss):
    """The state of an AUC-margin loss: learnable a, b (C,) and the dual α (C,) (a buffer),
    PESG's options, and α's closed-form ascent :meth:`dual_step`."""

    state_names = ("a", "b", "alpha")

    def __init__(self, *, num_classes: int, epoch_decay: float, clip_value: float | None,
                 **options) -> None:  # fmt: skip
        super().__init__(**options)
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"Expected `num_classes` to be an int >= 1 but got {num_classes!r}")
        check_auc_options(self.options["margin"], self.options["version"],
                          self.options["imratio"], num_classes)  # fmt: skip
        self.a = nn.Parameter(torch.zeros(num_classes))
        self.b = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer("alpha", torch.zeros(num_classes))
        self._optimizer_options = {"epoch_decay": epoch_decay, "clip_value": clip_value}

    def state_kwargs(self) -> dict:
        return {"a": self.a, "b": self.b, "alpha": self.alpha}

    def optimizer_options(self) -> dict:
        return dict(self._optimizer_options)

    @torch.no_grad()
    def dual_step(self, lr: float) -> None:
        """α ← [α + lr·(2(m + b − a) − 2α)]₊: ascent on α with the closed-form gradient of the
        objective at the primal optimum (a, b = the class means of the scores), as LibAUC's PESG
        (it does not use the stochastic gradient in α)."""
        m = self.options["margin"]
        step = 2 * (m + self.b - self.a) - 2 * self.alpha
        self.alpha.copy_((self.alpha + lr * step).clamp_(min=0))


@register_loss(
    "aucm",
    needs=("num_classes",),
    batch_coupled=True,
    reductions=("mean", "sum"),
    stateful=True,
    optimizer="pesg",
    param_lr=1.0,
    param_weight_decay=False,
    reference="Yuan et al. 2021, Large-scale Robust Deep AUC Maximization (ICCV)",
    peer="monai.losses.AUCMLoss (per class); libauc.losses.MultiLabelAUCMLoss",
)
class AUCMLoss(AUCState, fn=aucm_loss):
    """Module form of :func:`aucm_loss`: owns a, b (parameters) and α (buffer); trained with
    PESG (``losses.PESG``), whose options it carries.

    Args:
        num_classes: C (the registry takes it from the training set's class counts).
        epoch_decay: PESG's proximal strength towards its reference point (LibAUC's default).
        clip_value: PESG's element-wise gradient clamp (LibAUC's default).
        margin, version, imratio, reduction, validate: as :func:`aucm_loss`.
    """

    init_only = ("num_classes", "epoch_decay", "clip_value")

    def __init__(self, *, num_classes: int, epoch_decay: float = 2e-3,
                 clip_value: float | None = 1.0, **options) -> None:  # fmt: skip
        super().__init__(num_classes=num_classes, epoch_decay=epoch_decay,
                         clip_value=clip_value, **options)  # fmt: skip
