"""Training and evaluation loops (MAE style): ``train_one_epoch``, ``evaluate``, ``fit``.

The engine knows models, losses and loaders only -- nothing about suites or the database.
Per step it does no host-device synchronisation: losses are kept on the device and checked
for finiteness every ``TrainConfig.nan_check_every`` steps (the failing step is still
reported exactly). One JSON line per epoch goes to the ``mlbench.engine`` logger.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .metrics import evaluate_scores

__all__ = [
    "FitResult",
    "TrainConfig",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_training_state",
    "lr_at",
    "save_checkpoint",
    "save_training_state",
    "train_one_epoch",
]

log = logging.getLogger("mlbench.engine")


def _adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


OPTIMIZERS: dict[str, Callable] = {"adamw": _adamw, "sgd": _sgd}
SCHEDULES = ("cosine", "constant")
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
        schedule: "cosine" (per-step decay from ``lr`` to ``min_lr`` after warm-up) or "constant".
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


@dataclass
class FitResult:
    """What :func:`fit` returns. ``history`` holds one dict per finished epoch."""

    status: str  # "finished" | "failed"
    best_epoch: int | None = None
    best_val_mean_auc: float = float("nan")
    history: list[dict] = field(default_factory=list)
    failure: str | None = None
    failed_step: int | None = None
    early_stopped: bool = False
    total_steps: int = 0
    resumed_from: int | None = None  # epoch of the training state the fit resumed from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def train_seconds(self) -> float:
        """Seconds spent in training steps (validation excluded), over every epoch, also
        those done before a resume."""
        return float(sum(r.get("train_time", 0.0) for r in self.history))

    @property
    def train_images(self) -> int:
        return int(sum(r.get("images", 0) for r in self.history))


# --------------------------------------------------------------------------- helpers


def lr_at(step: int, total_steps: int, warmup_steps: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine or constant."""
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Optimizer from ``cfg``; no weight decay on biases and normalisation parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return OPTIMIZERS[cfg.optimizer](groups, cfg)


def save_checkpoint(path: str | Path, model: nn.Module, **meta) -> None:
    """Write ``{"model": state_dict, **meta}`` atomically (tmp file + rename).

    Only tensors and plain Python values, so it loads with ``weights_only=True``.
    """
    _atomic_save({"model": model.state_dict(), **meta}, Path(path))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, map_location="cpu") -> dict:
    """Load a checkpoint weights-only; load its weights into ``model`` if given. Returns the dict."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model.load_state_dict(ckpt["model"])
    return ckpt


STATE_FORMAT = 1


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_training_state(path: str | Path, state: dict) -> None:
    """Write a training state (:func:`fit`'s ``last_path``) atomically: a reader sees the
    previous complete file or the new one, never a partial one."""
    _atomic_save({"format": STATE_FORMAT, **state}, Path(path))


def load_training_state(path: str | Path) -> dict | None:
    """The training state at ``path`` (weights-only load), or None if there is none.

    Raises:
        ValueError: the file exists but is not a training state of this format.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: say which, on one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot read the training state {path} ({type(exc).__name__}: "
                         f"{first[:120]}); delete it to restart the run from epoch 0") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an mlbench training state (format {STATE_FORMAT}); "
                         "delete it to restart the run from epoch 0")
    return state


def _autocast(device: torch.device, cfg: TrainConfig | None):
    on = cfg is not None and cfg.amp and device.type == "cuda"
    dtype = AMP_DTYPES[cfg.amp_dtype] if cfg is not None else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=on)


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    if channels_last and x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)


def _steps_per_epoch(loader, cfg: TrainConfig) -> int:
    n = len(loader)
    return n if cfg.max_steps_per_epoch is None else min(n, cfg.max_steps_per_epoch)


# --------------------------------------------------------------------------- loops


def train_one_epoch(
    model: nn.Module,
    loss_fn: Callable,
    loader,
    optimizer: torch.optim.Optimizer,
    device,
    epoch: int,
    cfg: TrainConfig,
    *,
    start_step: int = 0,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
) -> dict:
    """One pass over ``loader`` (at most ``cfg.max_steps_per_epoch`` steps).

    Args:
        model, loss_fn: ``loss_fn(logits (B, C) fp32, targets (B, C)) -> scalar``.
        loader: yields ``(images (B, 1, H, W), targets (B, C))``.
        optimizer: its learning rate is set every step from :func:`lr_at`.
        device: where to train.
        epoch: epoch index (for logs).
        cfg: training settings.
        start_step: global step index of this epoch's first step.
        total_steps, warmup_steps: schedule length (default: this epoch only, no warm-up).
        scaler: GradScaler for fp16 autocast (``None``: none).
        channels_last: move the images to the device in channels-last memory format.

    Returns:
        dict: ``train_loss`` (sample-weighted mean), ``steps``, ``images``, ``lr`` (last),
        ``train_time`` (s), ``status`` ("ok" | "failed"), ``failed_step`` (global step of
        the first non-finite loss, or None).
    """
    device = torch.device(device)
    model.train()
    max_steps = _steps_per_epoch(loader, cfg)
    total_steps = total_steps or max_steps
    window: list[torch.Tensor] = []  # detached (loss * batch size) since the last check
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    images, steps, lr, window_start = 0, 0, cfg.lr, start_step
    t0 = time.perf_counter()

    def check() -> int | None:  # one sync: the first non-finite step in the window, if any
        nonlocal loss_sum, window, window_start
        vals = torch.stack(window)
        bad = ~torch.isfinite(vals)
        if bool(bad.any()):
            return window_start + int(bad.nonzero()[0, 0])
        loss_sum = loss_sum + vals.sum(dtype=torch.float64)
        window, window_start = [], window_start + len(vals)
        return None

    failed = None
    for i, (x, y) in enumerate(loader):
        if i >= max_steps:
            break
        step = start_step + i
        lr = lr_at(step, total_steps, warmup_steps, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        x = _to(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        with _autocast(device, cfg):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        window.append(loss.detach() * x.shape[0])
        if (i + 1) % cfg.nan_check_every == 0 and (failed := check()) is not None:
            break  # with nan_check_every=1 this is before the bad backward
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        images += x.shape[0]
        steps += 1
        if cfg.log_every and (step + 1) % cfg.log_every == 0:
            log.info(json.dumps({"epoch": epoch, "step": step, "loss": float(loss), "lr": lr}))
    if failed is None and window:
        failed = check()
    return {
        "epoch": epoch,
        "train_loss": float(loss_sum) / max(images, 1) if failed is None else float("nan"),
        "steps": steps,
        "images": images,
        "lr": lr,
        "train_time": time.perf_counter() - t0,
        "status": "ok" if failed is None else "failed",
        "failed_step": failed,
    }


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, loss_fn: Callable | None = None,
             cfg: TrainConfig | None = None, channels_last: bool = False) -> dict:
    """Predict a whole loader and compute the metrics.

    Args:
        model: (B, 1, H, W) -> (B, C) logits.
        loader: yields ``(images, targets)``.
        device: where to run.
        loss_fn: if given, the sample-weighted mean loss is reported too.
        cfg: only its AMP settings are used (autocast on CUDA).
        channels_last: images to the device in channels-last memory format.

    Returns:
        dict: ``scores`` (N, C) sigmoid probabilities (np.float32), ``targets`` (N, C),
        ``auc``/``ap`` (C,) arrays with NaN for single-valued classes, ``mean_auc``,
        ``mean_ap``, ``skipped`` (class indices), ``loss`` (NaN without ``loss_fn``),
        ``eval_time`` (s).

    Raises:
        FloatingPointError: the model produced NaN/inf outputs.
    """
    device = torch.device(device)
    model.eval()
    t0 = time.perf_counter()
    probs, targets = [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in loader:
        x = _to(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        with _autocast(device, cfg):
            logits = model(x).float()
        if loss_fn is not None:
            loss_sum += loss_fn(logits, y).detach().double() * x.shape[0]
        probs.append(torch.sigmoid(logits))
        targets.append(y)
    scores = torch.cat(probs).cpu().numpy()
    tgt = torch.cat(targets).cpu().numpy()
    if not np.isfinite(scores).all():
        raise FloatingPointError("model produced non-finite outputs during evaluation")
    out = {"scores": scores, "targets": tgt, **evaluate_scores(tgt, scores)}
    out["loss"] = float(loss_sum) / len(tgt) if loss_fn is not None and len(tgt) else float("nan")
    out["eval_time"] = time.perf_counter() - t0
    return out


def fit(
    model: nn.Module,
    loss_fn: Callable,
    train_loader,
    val_loader,
    cfg: TrainConfig,
    device="cpu",
    on_epoch_end: Callable[[dict], None] | None = None,
    checkpoint_path: str | Path | None = None,
    *,
    last_path: str | Path | None = None,
    resume: dict | None = None,
    channels_last: bool = False,
) -> FitResult:
    """Train with validation after each epoch; keep and finally restore the best weights.

    The best epoch is the one with the highest validation mean AUC (the first one if every
    mean AUC is NaN). Its weights are kept in memory (CPU copy) and, with
    ``checkpoint_path``, saved there (weights-only format, :func:`load_checkpoint`). A
    non-finite training loss or validation output ends the run with ``status="failed"``,
    the message and the global step (``failed_step``, 0-based) recorded; the best weights
    so far are still restored.

    Resume: with ``last_path`` the whole training state is written there atomically after
    every epoch (model, optimizer, schedule position, GradScaler, global RNG states,
    history, early-stopping state and the best weights; :func:`load_training_state`).
    ``resume=`` such a state continues after its epoch and ends exactly as the
    uninterrupted fit would on CPU, provided the train loader's order depends on the epoch
    only: a loader with ``set_epoch(epoch)`` gets it called before each epoch (the harness
    reseeds its generator from (seed, epoch), ``mlbench.seeding.reseed_loader``).

    Args:
        model: moved to ``device``.
        loss_fn: ``loss_fn(logits, targets) -> scalar``.
        train_loader, val_loader: yield ``(images, targets)``.
        cfg: :class:`TrainConfig`.
        device: "cpu", "cuda", a ``torch.device``...
        on_epoch_end: called with each epoch's history row (JSON-serialisable dict), after
            the epoch's checkpoints are written.
        checkpoint_path: where to save the best checkpoint (optional).
        last_path: where to save the training state after every epoch (optional).
        resume: a training state to continue from (``load_training_state(last_path)``).
        channels_last: model and images in channels-last memory format (CUDA speed).

    Returns:
        FitResult (``resumed_from``: the epoch of the state resumed from).
    """
    device = torch.device(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.amp and device.type != "cuda":
        warnings.warn("TrainConfig.amp is CUDA only; training in fp32 on " + device.type,
                      stacklevel=2)
    optimizer = build_optimizer(model, cfg)
    fp16 = cfg.amp and device.type == "cuda" and cfg.amp_dtype == "fp16"
    scaler = torch.amp.GradScaler("cuda") if fp16 else None
    per_epoch = _steps_per_epoch(train_loader, cfg)
    total = per_epoch * cfg.epochs
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_epochs * per_epoch)
    result = FitResult(status="finished")
    best_state, best, stale, step, start, stopped = None, -math.inf, 0, 0, 0, False
    if resume is not None:
        from .seeding import set_rng_state

        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scaler is not None and resume.get("scaler") is not None:
            scaler.load_state_dict(resume["scaler"])
        es = resume["early_stopping"]
        best, stale, stopped = es["best"], es["stale"], es["stopped"]
        result.best_epoch, result.best_val_mean_auc = es["best_epoch"], es["best_val_mean_auc"]
        best_state = resume["best_model"]
        step = resume["scheduler"]["step"]
        result.history = list(resume["history"])
        start = resume["epoch"] + 1
        result.resumed_from = resume["epoch"]
        set_rng_state(resume["rng"])
    for epoch in range(start, cfg.epochs):
        if stopped:
            break
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        tr = train_one_epoch(model, loss_fn, train_loader, optimizer, device, epoch, cfg,
                             start_step=step, total_steps=total, warmup_steps=warmup,
                             scaler=scaler, channels_last=channels_last)
        step += tr["steps"]
        if tr["status"] == "failed":
            result.status, result.failed_step = "failed", tr["failed_step"]
            result.failure = f"non-finite training loss at step {tr['failed_step']} (epoch {epoch})"
            break
        try:
            val = evaluate(model, val_loader, device, loss_fn, cfg, channels_last=channels_last)
        except FloatingPointError as e:
            result.status, result.failed_step = "failed", step
            result.failure = f"{e} after epoch {epoch} (step {step})"
            break
        row = {k: tr[k] for k in ("epoch", "train_loss", "steps", "images", "lr", "train_time")}
        row.update(
            images_per_s=tr["images"] / tr["train_time"] if tr["train_time"] > 0 else float("nan"),
            val_loss=val["loss"], val_mean_auc=val["mean_auc"], val_mean_ap=val["mean_ap"],
            val_auc=[float(a) for a in val["auc"]], val_skipped=val["skipped"],
            eval_time=val["eval_time"],
        )
        score = val["mean_auc"] if not math.isnan(val["mean_auc"]) else -math.inf
        improved = best_state is None or score > best
        if improved:
            best, stale = score, 0
            result.best_epoch, result.best_val_mean_auc = epoch, val["mean_auc"]
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, model, epoch=epoch, val_mean_auc=val["mean_auc"])
        else:
            stale += 1
        row["best"] = improved
        result.history.append(row)
        stopped = cfg.early_stopping_patience is not None and stale >= cfg.early_stopping_patience
        if last_path is not None:
            from .seeding import get_rng_state

            save_training_state(last_path, {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": {"step": step, "total_steps": total, "warmup_steps": warmup},
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": get_rng_state(),
                "history": result.history,
                "early_stopping": {"best": best, "stale": stale, "stopped": stopped,
                                   "best_epoch": result.best_epoch,
                                   "best_val_mean_auc": result.best_val_mean_auc},
                "best_model": best_state,
            })
        log.info(json.dumps(row))
        if on_epoch_end is not None:
            on_epoch_end(row)
    result.early_stopped = stopped
    result.total_steps = step
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
