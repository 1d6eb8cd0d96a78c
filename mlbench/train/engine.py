"""Training and evaluation loops (MAE style): ``train_one_epoch``, ``evaluate``, ``fit``.

The engine knows models, losses and loaders only -- nothing about suites or the database.
Per step it does no host-device synchronisation: losses are kept on the device and checked
for finiteness every ``TrainConfig.nan_check_every`` steps (the failing step is still
reported exactly). One JSON line per epoch goes to the ``mlbench.engine`` logger.

Losses with state follow their contract (``losses.training_contract``, docs/ADD_A_LOSS.md):
the loss's parameters join the optimizer with the loss's lr / weight-decay rule, a loss that
names its optimizer (AUC-M: PESG) gets it, the loss moves with the model, its
``state_dict()`` is part of ``last.pt`` and restored on resume, its hooks run before each
training epoch and step (the optimizer's ``on_epoch_start`` / ``on_lr_decay`` too: a decay is
an epoch whose first lr is below the previous epoch's first lr), and it receives the batch's
sample indices when it needs them (loaders then yield ``(images, targets, index)``).
Evaluation calls no hook, so validation and test passes leave the loss's state as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlbench.stats import evaluate_scores

from .checkpoint import (
    save_checkpoint,
    save_training_state,
)
from .config import (
    AMP_DTYPES,
    TrainConfig,
    build_optimizer,
    lr_at,
)

__all__ = ["FitResult", "Stage", "evaluate", "fit", "train_one_epoch"]

log = logging.getLogger("mlbench.engine")


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
    optimizer: str = ""  # the optimizer trained with: cfg.optimizer or the one the loss names

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


def _contract(loss_fn):
    import losses

    return losses.training_contract(loss_fn)


def _set_mode(loss_fn, train: bool) -> None:
    if isinstance(loss_fn, nn.Module):
        loss_fn.train(train)


def _split_batch(batch, needs_index: bool, device: torch.device):
    """``(images, targets)`` or ``(images, targets, index)``; the index on ``device`` when the
    loss needs it (a ValueError if the loader does not give it), else None."""
    x, y, *rest = batch
    if not needs_index:
        return x, y, None
    if not rest:
        raise ValueError(
            "The loss needs the batch's sample indices (its contract's needs_index): the "
            "train loader must yield (images, targets, index), index the (B,) int64 positions "
            "of the samples in the training set"
        )
    return x, y, rest[0].to(device, non_blocking=True)


def _lr_decays(epoch: int, per_epoch: int, total: int, warmup: int, cfg: TrainConfig) -> bool:
    """Whether epoch ``epoch`` starts with a learning-rate decay: its first lr is below the
    previous epoch's first lr (every epoch of a cosine schedule after warm-up, the milestones
    of "step", never with "constant")."""
    if epoch == 0:
        return False
    first = lr_at(epoch * per_epoch, total, warmup, cfg)
    return first < lr_at((epoch - 1) * per_epoch, total, warmup, cfg)


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
    contract=None,
    stage_start: int = 0,
) -> dict:
    """One pass over ``loader`` (at most ``cfg.max_steps_per_epoch`` steps).

    Args:
        model, loss_fn: ``loss_fn(logits (B, C) fp32, targets (B, C)) -> scalar`` (with
            ``index=`` too when its contract needs sample indices).
        loader: yields ``(images (B, 1, H, W), targets (B, C))`` or ``(images, targets,
            index (B,))``.
        optimizer: its learning rate is set every step from :func:`lr_at` (times a group's
            ``lr_scale``, the rule of a loss's parameters).
        device: where to train.
        epoch: epoch index (for logs).
        cfg: training settings.
        start_step: global step index of this epoch's first step.
        total_steps, warmup_steps: schedule length (default: this epoch only, no warm-up).
        scaler: GradScaler for fp16 autocast (``None``: none).
        channels_last: move the images to the device in channels-last memory format.
        contract: the loss's ``losses.LossContract`` (default: read off ``loss_fn``); its
            ``on_step_start`` hook runs before every step.
        stage_start: global step of the first step of the current stage (:class:`Stage`):
            the schedule and the loss's step hook count from it (0: a one-stage fit).

    Returns:
        dict: ``train_loss`` (sample-weighted mean), ``steps``, ``images``, ``lr`` (last),
        ``train_time`` (s), ``status`` ("ok" | "failed"), ``failed_step`` (global step of
        the first non-finite loss, or None).
    """
    device = torch.device(device)
    contract = _contract(loss_fn) if contract is None else contract
    model.train()
    _set_mode(loss_fn, True)
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
    for i, batch in enumerate(loader):
        if i >= max_steps:
            break
        step = start_step + i
        lr = lr_at(step - stage_start, total_steps, warmup_steps, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"] if "lr_scale" in g else lr
        x, y, index = _split_batch(batch, contract.needs_index, device)
        x = _to(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        contract.on_step_start(step - stage_start)
        with _autocast(device, cfg):
            logits = model(x)
        if index is None:
            loss = loss_fn(logits.float(), y)
        else:
            loss = loss_fn(logits.float(), y, index=index)
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
             cfg: TrainConfig | None = None, channels_last: bool = False,
             classes: int | None = None) -> dict:
    """Predict a whole loader and compute the metrics.

    Args:
        model: (B, 1, H, W) -> (B, C) logits.
        loader: yields ``(images, targets)`` (or ``(images, targets, index)``, index unused).
        device: where to run.
        loss_fn: if given, the sample-weighted mean loss is reported too (called without
            sample indices and without hooks: a loss's state is left as it is).
        cfg: only its AMP settings are used (autocast on CUDA).
        channels_last: images to the device in channels-last memory format.
        classes: score only the first ``classes`` outputs (the rest, e.g. the "No Finding"
            output of ``model.no_finding``, are trained but not evaluated; the loss, if
            reported, is over every output). None: every output.

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
    _set_mode(loss_fn, False)
    t0 = time.perf_counter()
    probs, targets = [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for x, y, *_ in loader:
        x = _to(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        with _autocast(device, cfg):
            logits = model(x).float()
        if loss_fn is not None:
            loss_sum += loss_fn(logits, y).detach().double() * x.shape[0]
        if classes is not None:
            logits, y = logits[:, :classes], y[:, :classes]
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


@dataclass
class Stage:
    """One stage of a multi-stage recipe (e.g. BCE pre-training, then AUC-M with PESG).

    Attributes:
        loss_fn: the stage's loss (its contract decides the optimizer, as for a one-stage fit).
        cfg: the stage's settings; ``cfg.epochs`` is the stage's length, its learning-rate
            schedule (warm-up included) runs over the stage alone.
        label: a name for logs and the history rows (``"bce"``).
    """

    loss_fn: Callable
    cfg: TrainConfig
    label: str = ""


def fit(
    model: nn.Module,
    loss_fn: Callable | None,
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
    identity: dict | None = None,
    before_save: Callable[[Path, int], None] | None = None,
    stages: list[Stage] | None = None,
    eval_classes: int | None = None,
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
    history, early-stopping state, the best weights, the stage, and the loss's
    ``state_dict()`` when it has state; :func:`load_training_state`).
    ``resume=`` such a state continues after its epoch and ends exactly as the
    uninterrupted fit would on CPU, provided the train loader's order depends on the epoch
    only: a loader with ``set_epoch(epoch)`` gets it called before each epoch (the harness
    reseeds its generator from (seed, epoch), ``mlbench.train.seeding.reseed_loader``).

    A loss with state (``losses.training_contract(loss_fn)``) is moved to ``device``, trains
    its parameters with the model (its optimizer if it names one), and has its hooks called:
    ``on_epoch_start(epoch)`` before each training epoch, ``on_step_start(step)`` before each
    step; the optimizer's ``on_epoch_start(epoch)`` and, at an epoch that starts with a lower
    lr than the previous one, ``on_lr_decay()``.

    Stages (``stages=``, a recipe such as BCE pre-training then AUC-M): the stages run one
    after the other on the same model, so a stage starts from the weights the previous one
    ended with; at each stage boundary the optimizer is built afresh from the stage's loss
    and settings (PESG for AUC-M: its reference point is the weights at the boundary), the
    schedule restarts, and the loss's hooks and the optimizer's decay hook count epochs and
    steps from the stage's start. ``cfg.epochs`` must be the stages' total. Early stopping
    acts in the last stage only (its patience counted from the stage's start; the best epoch
    is still the best of the whole fit). A state saved
    inside a stage resumes that stage's optimizer and loss; one saved at the last epoch of a
    stage resumes into the next stage exactly as the uninterrupted fit enters it.

    Args:
        model: moved to ``device``.
        loss_fn: ``loss_fn(logits, targets) -> scalar`` (a registered loss, a weighted sum of
            them, or any callable without parameters); None with ``stages``.
        train_loader, val_loader: yield ``(images, targets)``.
        cfg: :class:`TrainConfig` (with ``stages``: the run's, only ``epochs``,
            ``early_stopping_patience``, ``amp`` and ``amp_dtype`` used).
        device: "cpu", "cuda", a ``torch.device``...
        on_epoch_end: called with each epoch's history row (JSON-serialisable dict), after
            the epoch's checkpoints are written.
        checkpoint_path: where to save the best checkpoint (optional).
        last_path: where to save the training state after every epoch (optional).
        resume: a training state to continue from (``load_training_state(last_path)``).
        channels_last: model and images in channels-last memory format (CUDA speed).
        identity: stored in both checkpoints (the harness's run id and config fingerprint),
            checked by ``load_training_state(..., expect=)`` / ``load_checkpoint``.
        before_save: called with (path, epoch) before each checkpoint is written; what it
            raises ends the fit (a worker that no longer holds its run writes nothing).
        stages: a multi-stage recipe (:class:`Stage` list) instead of ``loss_fn``.
        eval_classes: validation scores only the first ``eval_classes`` outputs
            (:func:`evaluate`'s ``classes``; the "No Finding" output is trained, not scored).

    Returns:
        FitResult (``resumed_from``: the epoch of the state resumed from; ``optimizer``: the
        one trained with, the stages' joined by ``>``).

    Raises:
        ValueError: the loss's contract cannot be honoured (see
            ``losses.training_contract``), ``resume`` lacks the state of a stateful loss, or
            the stages' epochs do not add up to ``cfg.epochs``.
    """
    device = torch.device(device)
    if stages is None:
        stages = [Stage(loss_fn, cfg)]
    elif loss_fn is not None:
        raise ValueError("fit takes a loss_fn or stages, not both")
    if sum(st.cfg.epochs for st in stages) != cfg.epochs:
        raise ValueError(f"the stages' epochs {[st.cfg.epochs for st in stages]} must add up to "
                         f"cfg.epochs ({cfg.epochs})")
    firsts = [sum(st.cfg.epochs for st in stages[:k]) for k in range(len(stages))]
    contracts = [_contract(st.loss_fn) for st in stages]
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.amp and device.type != "cuda":
        warnings.warn("TrainConfig.amp is CUDA only; training in fp32 on " + device.type,
                      stacklevel=2)
    fp16 = cfg.amp and device.type == "cuda" and cfg.amp_dtype == "fp16"
    scaler = torch.amp.GradScaler("cuda") if fp16 else None
    per_epoch = _steps_per_epoch(train_loader, cfg)

    def stage_of(epoch: int) -> int:
        return max(k for k, first in enumerate(firsts) if first <= epoch)

    def enter(k: int):
        """Stage k's loss on the device and its fresh optimizer, total and warm-up steps."""
        st = stages[k]
        if isinstance(st.loss_fn, nn.Module):
            st.loss_fn.to(device)
        opt = build_optimizer(model, st.cfg, st.loss_fn)
        tot = per_epoch * st.cfg.epochs
        wu = (st.cfg.warmup_steps if st.cfg.warmup_steps is not None
              else round(st.cfg.warmup_epochs * per_epoch))
        return opt, tot, wu

    names = [c.optimizer or st.cfg.optimizer for c, st in zip(contracts, stages, strict=True)]
    result = FitResult(status="finished", optimizer=">".join(names))
    best_state, best, stale, step, start, stopped = None, -math.inf, 0, 0, 0, False
    if resume is not None:
        start = resume["epoch"] + 1
        model.load_state_dict(resume["model"])  # first: a fresh optimizer starts from it
    current = stage_of(min(start, cfg.epochs - 1))
    optimizer, total, warmup = enter(current)
    if resume is not None:
        from .seeding import set_rng_state

        if resume.get("stage", 0) == current:  # inside a stage: its optimizer and loss go on
            contract = contracts[current]
            if contract.has_state:
                if resume.get("loss") is None:
                    raise ValueError(
                        f"the training state to resume from has no state of the loss "
                        f"{contract.names}; it was written by a run without it: delete it to "
                        "restart the run from epoch 0"
                    )
                stages[current].loss_fn.load_state_dict(resume["loss"])
            optimizer.load_state_dict(resume["optimizer"])
        if scaler is not None and resume.get("scaler") is not None:
            scaler.load_state_dict(resume["scaler"])
        es = resume["early_stopping"]
        best, stale, stopped = es["best"], es["stale"], es["stopped"]
        result.best_epoch, result.best_val_mean_auc = es["best_epoch"], es["best_val_mean_auc"]
        best_state = resume["best_model"]
        step = resume["scheduler"]["step"]
        result.history = list(resume["history"])
        result.resumed_from = resume["epoch"]
        set_rng_state(resume["rng"])
    for epoch in range(start, cfg.epochs):
        if stopped:
            break
        if stage_of(epoch) != current:  # a stage boundary: the next loss, a fresh optimizer
            current = stage_of(epoch)
            optimizer, total, warmup = enter(current)
        if current > 0 and epoch == firsts[current]:
            stale = 0  # patience counts inside the last stage (the earlier ones run in full)
        stage, contract = stages[current], contracts[current]
        scfg, loss_fn, local = stage.cfg, stage.loss_fn, epoch - firsts[current]
        stage_start = firsts[current] * per_epoch
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        contract.on_epoch_start(local)
        if hasattr(optimizer, "on_epoch_start"):
            optimizer.on_epoch_start(local)
        if hasattr(optimizer, "on_lr_decay") and _lr_decays(local, per_epoch, total, warmup,
                                                            scfg):
            optimizer.on_lr_decay()
        tr = train_one_epoch(model, loss_fn, train_loader, optimizer, device, epoch, scfg,
                             start_step=step, total_steps=total, warmup_steps=warmup,
                             scaler=scaler, channels_last=channels_last, contract=contract,
                             stage_start=stage_start)
        step += tr["steps"]
        if tr["status"] == "failed":
            result.status, result.failed_step = "failed", tr["failed_step"]
            result.failure = (f"non-finite training loss at step {tr['failed_step']} "
                              f"(epoch {epoch + 1} of {cfg.epochs})")
            break
        try:
            val = evaluate(model, val_loader, device, loss_fn, cfg, channels_last=channels_last,
                           classes=eval_classes)
        except FloatingPointError as e:
            result.status, result.failed_step = "failed", step
            result.failure = f"{e} after epoch {epoch + 1} of {cfg.epochs} (step {step})"
            break
        row = {k: tr[k] for k in ("epoch", "train_loss", "steps", "images", "lr", "train_time")}
        if len(stages) > 1:
            row["stage"] = stage.label or str(current)
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
                if before_save is not None:
                    before_save(Path(checkpoint_path), epoch)
                save_checkpoint(checkpoint_path, model, epoch=epoch, val_mean_auc=val["mean_auc"],
                                identity=identity)
        else:
            stale += 1
        row["best"] = improved
        result.history.append(row)
        stopped = (cfg.early_stopping_patience is not None and current == len(stages) - 1
                   and stale >= cfg.early_stopping_patience)
        if last_path is not None:
            from .seeding import get_rng_state

            if before_save is not None:
                before_save(Path(last_path), epoch)
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
                **({"loss": loss_fn.state_dict()} if contract.has_state else {}),
                **({"stage": current} if len(stages) > 1 else {}),
            }, identity=identity)
        log.info(json.dumps(row))
        if on_epoch_end is not None:
            on_epoch_end(row)
    result.early_stopped = stopped
    result.total_steps = step
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
