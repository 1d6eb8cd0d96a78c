"""Training settings (:class:`TrainConfig`, a suite's ``train`` section) and what follows
from them and the loss: the optimizer (``OPTIMIZERS``, no weight decay on biases and norm
layers; the loss's parameters and the optimizer a loss names, :func:`build_optimizer`) and the
learning-rate schedule (:func:`lr_at`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


def _adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


OPTIMIZERS: dict[str, Callable] = {"adamw": _adamw, "sgd": _sgd}
SCHEDULES = ("cosine", "constant", "step")
# "step": the lr divided by STEP_FACTOR at the epochs STEP_AT × epochs (rounded down, those >= 1):
# LibAUC's recipe for AUC-M with PESG (its reference point is updated at each decay).
STEP_AT = (0.5, 0.75)
STEP_FACTOR = 10.0
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: maximum number of epochs.
        optimizer: one of ``OPTIMIZERS`` ("adamw", "sgd").
        lr: peak learning rate (after warm-up).
        weight_decay: applied to weights with ndim > 1 only (not to biases / norm layers).
        momentum, nesterov: SGD only. betas: AdamW only.
        schedule: "cosine" (per-step decay from ``lr`` to ``min_lr`` after warm-up),
            "constant", or "step" (``lr`` divided by 10 at 50% and 75% of the epochs, LibAUC's
            recipe for AUC-M; ``min_lr`` unused).
        warmup_epochs: linear warm-up length in epochs (fractions allowed);
            ``warmup_steps`` overrides it when set.
        grad_clip: max global gradient norm; ``None`` disables.
        amp: autocast on CUDA with ``amp_dtype`` ("bf16" or "fp16"; fp16 uses a GradScaler).
            Ignored (with a warning) on CPU.
        early_stopping_patience: stop after this many epochs without a better validation
            mean AUC; ``None`` disables.
        max_steps_per_epoch: cap on optimizer steps per epoch (``None``: the whole loader).
        log_every: log the running loss every this many steps (0: epoch lines only).
        nan_check_every: check the loss for NaN/inf every this many steps (one sync each
            time; 1 checks before every backward). The first non-finite step is reported
            exactly either way.
    """

    epochs: int = 10
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    min_lr: float = 0.0
    grad_clip: float | None = None
    amp: bool = False
    amp_dtype: str = "bf16"
    early_stopping_patience: int | None = None
    max_steps_per_epoch: int | None = None
    log_every: int = 0
    nan_check_every: int = 50

    def __post_init__(self):
        def need(ok, key, allowed):
            if not ok:
                raise ValueError(f"Expected `{key}` {allowed} but got {getattr(self, key)!r}")

        need(self.optimizer in OPTIMIZERS, "optimizer", f"to be one of {sorted(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, "schedule", f"to be one of {list(SCHEDULES)}")
        need(self.amp_dtype in AMP_DTYPES, "amp_dtype", f"to be one of {sorted(AMP_DTYPES)}")
        need(self.epochs >= 1, "epochs", ">= 1")
        need(self.lr > 0, "lr", "> 0")
        need(0 <= self.min_lr <= self.lr, "min_lr", "in [0, lr]")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.warmup_epochs >= 0, "warmup_epochs", ">= 0")
        need(self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps", ">= 0 or None")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 or None")
        need(self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             "early_stopping_patience", ">= 1 or None")
        need(self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             "max_steps_per_epoch", ">= 1 or None")
        need(self.log_every >= 0, "log_every", ">= 0")
        need(self.nan_check_every >= 1, "nan_check_every", ">= 1")
        betas = self.betas if isinstance(self.betas, (list, tuple)) else ()
        need(len(betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                     and 0 <= b < 1 for b in betas),
             "betas", "two numbers in [0, 1)")
        self.betas = tuple(self.betas)

    @classmethod
    def from_dict(cls, d: dict, *, ignore_unknown: bool = False) -> TrainConfig:
        """Build from a mapping (suite YAML); unknown keys are an error naming them, or are
        left out with ``ignore_unknown`` (a suite's ``train`` also holds harness keys)."""
        names = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(d) - set(names))
        if bad and not ignore_unknown:
            raise ValueError(f"Unknown training option(s) {bad}; allowed: {names}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def step_decay_epochs(epochs: int) -> tuple[int, ...]:
    """The epochs at whose start the "step" schedule divides the lr (sorted, distinct, >= 1)."""
    return tuple(sorted({int(f * epochs) for f in STEP_AT} - {0}))


def lr_at(step: int, total_steps: int, warmup_steps: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine, constant
    or step decay (epochs of ``total_steps // cfg.epochs`` steps)."""
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        epoch = step // max(1, total_steps // cfg.epochs)
        passed = sum(epoch >= e for e in step_decay_epochs(cfg.epochs))
        return cfg.lr / STEP_FACTOR**passed
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def build_optimizer(model: nn.Module, cfg: TrainConfig, loss=None) -> torch.optim.Optimizer:
    """Optimizer from ``cfg``; no weight decay on biases and normalisation parameters.

    With ``loss`` (a built loss): its parameters join as one group per stateful term, with
    the term's rule (``lr_scale`` = ``LossInfo.param_lr``, the engine multiplies the
    scheduled lr by it; ``cfg.weight_decay`` only if ``LossInfo.param_weight_decay``), and a
    loss that names its optimizer (``LossInfo.optimizer``, e.g. PESG for AUC-M) gets that one
    instead of ``cfg.optimizer``, with ``cfg.lr``, ``cfg.momentum`` and the loss's options
    (:func:`losses.training_contract`). Without loss parameters the groups are the two
    above, so the state of a stateless run is what it always was.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if loss is None:
        return OPTIMIZERS[cfg.optimizer](groups, cfg)
    import losses

    contract = losses.training_contract(loss)
    for g in contract.param_groups:
        groups.append({"params": list(g.params), "lr_scale": g.lr_scale,
                       "weight_decay": cfg.weight_decay if g.weight_decay else 0.0})
    if contract.optimizer:
        return losses.create_optimizer(contract.optimizer, groups, lr=cfg.lr,
                                       momentum=cfg.momentum, dual_losses=contract.dual_losses,
                                       **contract.optimizer_options)
    return OPTIMIZERS[cfg.optimizer](groups, cfg)


def optimizer_name(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> str:
    """The name of a built optimizer: a loss's (``losses.LOSS_OPTIMIZERS``) or ``cfg``'s."""
    import losses

    for name, cls in losses.LOSS_OPTIMIZERS.items():
        if type(optimizer) is cls:
            return name
    return cfg.optimizer
