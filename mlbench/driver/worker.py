"""The one-run worker: resolved run config in, ``RunResult`` out. No database.

``execute(run, checkpoint_dir)``: seeded (``mlbench.train.deterministic``, with
``train.deterministic``) with ``train.threads`` torch threads -> train/val/test datasets from
the prepared cache -> seeded loaders (the train order reseeded per epoch from (seed, epoch))
-> ``build_model`` -> ``losses.create_loss(spec, stats=train stats)`` -> ``engine.fit``,
which writes ``CHECKPOINTS/<run id>/last.pt`` (whole training state) and ``best.pt`` (best
weights, weights-only) atomically after every epoch and resumes from ``last.pt`` when a
previous attempt left one -> ``evaluate`` on the test split -> per-class AUC/AP, mean AUC,
mAP, bootstrap CIs, the test image and patient ids, timings, device name.

The driver (``loop``) owns ``results.db``: it claims runs, hands them to an executor
(``executors``) whose workers call :func:`run_task`, and stores each ``RunResult`` as it
comes back. ``prepare.prepare_data`` makes the dataset ready once, before any run starts
(generate CXR14-sim if absent, build the prepared cache).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlbench.db import worker_name
from mlbench.driver.cores import run_threads
from mlbench.driver.prepare import Datasets
from mlbench.suite import training_labels

CHECKPOINT_FILES = ("last.pt", "best.pt")
HOLDER_FILE = "holder"  # CHECKPOINTS/<run id>/holder: the attempt that may write its checkpoints


class RunTakenOver(RuntimeError):
    """Another worker took this run (its holder file names another attempt): this one stops
    without writing a checkpoint."""


def state_identity(run: dict) -> dict:
    """What a run's ``last.pt`` / ``best.pt`` carry and are checked against: the run id and
    a fingerprint of its resolved config (where the data and the cache live left out, as in
    the run id)."""
    import copy
    import hashlib

    from mlbench.suite import canonical_json

    cfg = copy.deepcopy(run["config"])
    for key in ("root", "cache_dir"):
        cfg.get("dataset", {}).pop(key, None)
    for key in ("suite", "tune"):
        cfg.pop(key, None)
    return {"run_id": run["id"],
            "config": hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:16]}


def hold_checkpoints(folder: Path) -> Callable[[Path, int], None]:
    """Write this attempt's token to ``folder/holder``; returns the check made before each
    checkpoint write: it raises :class:`RunTakenOver` once another attempt wrote its own
    (a stopped worker that wakes up after its run was handed to another)."""
    import uuid

    token = f"{worker_name()} {uuid.uuid4().hex}"
    holder = folder / HOLDER_FILE
    from mlbench.files import atomic_write

    atomic_write(holder, token)

    def check(path: Path, epoch: int) -> None:
        try:
            now = holder.read_text()
        except OSError:
            now = "(none: the folder was removed)"
        if now != token:
            raise RunTakenOver(f"run {folder.name} was taken over by another worker "
                               f"({holder} names {now.split()[0] if now.split() else now}); "
                               f"this attempt stops without writing {path.name}")

    return check


@dataclass
class RunResult:
    """What one run computes; the driver stores it (``loop.Driver``).

    Attributes:
        run_id: the run's id.
        status: "finished" or "failed"; "pending": not computed for a reason outside the
            run (a full disk while checkpointing): the driver gives the run back, ``error``
            says why in one line.
        records: test metric rows ``(name, finding, value, lo, hi)``
            (``mlbench.stats.metric_records``).
        history: the engine's per-epoch rows (also those before a resume).
        scores, targets: (N, C) test probabilities and labels, rows in ``image_ids`` order.
        image_ids, patient_ids: the N test images and their patients.
        best_val_mean_auc: validation mean AUC of the kept (best) epoch.
        train_seconds: time in training steps over all epochs (validation excluded).
        train_images_per_s: training images per second over all epochs.
        device: where it trained, e.g. "cpu" or "NVIDIA H100 80GB HBM3".
        checkpoints: ``{"last": path, "best": path}`` of the files written.
        resumed_from: epoch of the training state this attempt resumed from, or None.
        error, failed_step: why and where a failed run failed.
        worker: ``host:pid`` of the process that computed it.
    """

    run_id: str
    status: str
    records: list[tuple] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    scores: np.ndarray | None = None
    targets: np.ndarray | None = None
    image_ids: list[str] | None = None
    patient_ids: list | None = None
    best_val_mean_auc: float = float("nan")
    train_seconds: float = float("nan")
    train_images_per_s: float = float("nan")
    device: str = ""
    checkpoints: dict[str, str] = field(default_factory=dict)
    resumed_from: int | None = None
    error: str | None = None
    failed_step: int | None = None
    worker: str = ""

    def run_records(self) -> list[tuple]:
        """Run-level rows stored beside the test metrics (finding ``""``)."""
        return [("val_mean_auc", "", self.best_val_mean_auc, None, None),
                ("train_seconds", "", self.train_seconds, None, None),
                ("train_images_per_s", "", self.train_images_per_s, None, None)]


class ShuffledLabels:
    """A training split whose label rows are permuted over its images (``labels: shuffled``
    of a grid.loss mapping, :data:`mlbench.suite.grid.LABEL_CONTROLS`): item i is image i with
    the labels of image ``perm[i]``, ``perm`` a seeded permutation fixed for the run. The
    label statistics (``stats()``: class counts, the loss factory's) are the split's own, so
    the loss is built as for the true labels; only the pairing of images and labels is gone."""

    def __init__(self, base, seed: int):
        self.base = base
        self.perm = np.random.default_rng([seed, 25]).permutation(len(base))
        self.labels = np.ascontiguousarray(base.labels[self.perm])

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        img, label, *rest = self.base[i]
        return (img, label.new_tensor(self.labels[i]), *rest)

    def stats(self) -> dict:
        return self.base.stats()


def _train_config(train_cfg: dict):
    from mlbench.train import TrainConfig

    return TrainConfig.from_dict(train_cfg, ignore_unknown=True)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def device_name(device: str) -> str:
    """Human name of a device: the GPU model on CUDA, "cpu" otherwise."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return dev.type




@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checkpoint_paths(checkpoint_dir: str | Path, run_id: str) -> dict[str, Path]:
    folder = Path(checkpoint_dir) / run_id
    return {"last": folder / "last.pt", "best": folder / "best.pt"}


def execute(run: dict, checkpoint_dir: str | Path | None = None, data: Datasets | None = None, *,
            bar_position: int = 1, progress: bool = True,
            on_epoch: Callable[[dict], None] | None = None, cache: str | None = None,
            before_save: Callable[[Path, int], None] | None = None) -> RunResult:
    """Train and evaluate one run; return its results (nothing is stored here).

    Args:
        run: ``{"id", "config", ...}`` (a ``results.db`` row or ``{"id": r.id, "config":
            r.config}``); ``loss``/``seed`` only label the progress bar.
        checkpoint_dir: checkpoints go to ``checkpoint_dir/<run id>/``; a ``last.pt`` left
            there by an earlier attempt is resumed from. None: a temporary folder, no resume.
        data: datasets reused across the runs of a process (default: one per process).
        bar_position, progress: the per-run tqdm bar.
        on_epoch: called with each epoch's history row.
        cache: the prepared cache folder (``prepare_data``'s result): the splits are opened
            from it alone. None: from the dataset root (checks the cache is up to date).
        before_save: called with (path, epoch) before each checkpoint write (tests' faults).

    The checkpoints carry :func:`state_identity`; a ``last.pt`` that is damaged or another
    run's is refused (``CheckpointError``: the file and the fix), never trained on.
    """
    import tempfile

    if checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix=f"mlbench-{run['id']}-") as tmp:
            result = execute(run, tmp, data, bar_position=bar_position, progress=progress,
                             on_epoch=on_epoch, cache=cache, before_save=before_save)
        result.checkpoints = {}
        return result
    cfg = run["config"]
    with _torch_threads(run_threads(cfg)):
        return _execute(run, checkpoint_paths(checkpoint_dir, run["id"]), data or _DATA,
                        bar_position, progress, on_epoch, cache, before_save)


def _execute(run, paths, data, bar_position, progress, on_epoch, cache,
             before_save) -> RunResult:
    import torch
    from torch.utils.data import DataLoader

    import losses
    from mlbench.data import FINDINGS, WithNoFinding
    from mlbench.models import build_model
    from mlbench.train import (
        ClassAwareSampler,
        EpochLoader,
        deterministic,
        evaluate,
        fit,
        is_recipe,
        load_training_state,
        loader_kwargs,
        recipe_stages,
    )

    cfg = run["config"]
    seed = cfg["seed"]
    tcfg, mcfg, dcfg = cfg["train"], cfg["model"], cfg["dataset"]
    device = _device(tcfg["device"])
    cuda = torch.device(device).type == "cuda"
    result = RunResult(run_id=run["id"], status="failed", device=device_name(device),
                       worker=worker_name(),
                       checkpoints={k: str(p) for k, p in paths.items()})
    no_finding = bool(mcfg.get("no_finding"))  # a 15th output, trained, not scored
    with deterministic(seed, algorithms=tcfg.get("deterministic", True)):
        model = build_model(cfg["backbone"], cfg["head"],
                            num_classes=len(FINDINGS) + no_finding,
                            pretrained=mcfg["pretrained"], in_chans=mcfg["in_chans"],
                            weights=mcfg["weights"], head_kwargs=mcfg["head_kwargs"] or None)
        sets = data.get(dcfg, tcfg, model.norm_mean, model.norm_std, cache)
        spec, labels = training_labels(cfg["loss"])
        train_set, val_set = sets["train"], sets["val"]
        if no_finding:
            train_set, val_set = WithNoFinding(train_set), WithNoFinding(val_set)
        if labels is not None:  # a control: the label rows permuted over the images
            train_set = ShuffledLabels(train_set, seed)
        train_cfg = _train_config(tcfg)
        if is_recipe(spec):
            stages, loss_fn = recipe_stages(spec, train_cfg, train_set.stats()), None
        else:
            stages, loss_fn = None, losses.create_loss(spec, stats=train_set.stats())
        workers = tcfg["num_workers"]
        common = {"num_workers": workers, "pin_memory": cuda}
        order = {"shuffle": True, **loader_kwargs(seed)}
        if tcfg.get("sampler") == "class_aware":  # grouped by the findings the loss sees
            order["shuffle"] = False
            findings = train_set.labels[:, :sets["train"].labels.shape[1]]
            order["sampler"] = ClassAwareSampler(findings, order["generator"])
        train_loader = DataLoader(train_set, batch_size=tcfg["batch_size"],
                                  drop_last=len(train_set) > tcfg["batch_size"],
                                  **common, **order)
        eval_kw = dict(batch_size=tcfg["eval_batch_size"], shuffle=False, **common)
        val_loader = DataLoader(val_set, **eval_kw, **loader_kwargs(seed))
        test_loader = DataLoader(sets["test"], **eval_kw, **loader_kwargs(seed))
        scored = len(FINDINGS) if no_finding else None
        identity = state_identity(run)
        resume = load_training_state(paths["last"], expect=identity)
        held = hold_checkpoints(paths["last"].parent)

        def checked(path: Path, epoch: int) -> None:
            held(path, epoch)
            if before_save is not None:
                before_save(path, epoch)

        bar = _run_bar(run, train_loader, train_cfg, bar_position, progress)
        if resume is not None:
            bar.update(min(bar.total, bar.total * (resume["epoch"] + 1) // train_cfg.epochs))
        try:
            train = EpochLoader(train_loader, seed, on_batch=lambda: bar.update(1))
            fitted = fit(model, loss_fn, train, val_loader, train_cfg, device=device,
                         on_epoch_end=on_epoch,
                         checkpoint_path=paths["best"], last_path=paths["last"], resume=resume,
                         channels_last=cuda, identity=identity, before_save=checked,
                         stages=stages, eval_classes=scored)
        finally:
            bar.close()
        result.history, result.resumed_from = fitted.history, fitted.resumed_from
        result.best_val_mean_auc = fitted.best_val_mean_auc
        result.train_seconds = fitted.train_seconds
        if fitted.train_seconds > 0:
            result.train_images_per_s = fitted.train_images / fitted.train_seconds
        if fitted.status != "finished":
            result.error = fitted.failure or "training failed"
            result.failed_step = fitted.failed_step
            return result
        with torch.no_grad():
            out = evaluate(model, test_loader, device, cfg=train_cfg, channels_last=cuda,
                           classes=scored)
    from mlbench.stats import dataset_ids, metric_records  # the bootstrap resamples patients

    images, patients = dataset_ids(sets["test"])
    result.records = metric_records(out["targets"], out["scores"], FINDINGS,
                                    n_boot=cfg["eval"]["bootstrap"], seed=seed, groups=patients)
    result.scores, result.targets = out["scores"], out["targets"]
    result.image_ids = images.tolist()
    result.patient_ids = None if patients is None else patients.tolist()
    result.status = "finished"
    return result


def run_task(task: dict) -> RunResult:
    """What an executor's worker calls: :func:`execute` on ``task``; an exception in the run
    becomes a failed ``RunResult`` carrying its traceback (the other runs go on).

    ``task``: ``{"run": {"id", "config", ...}, "checkpoint_dir": str | None, "cache": the
    prepared cache folder or None, "progress": bool, "bar_position": int, "log_dir",
    "log_level", "fault": a test's fault spec or None}`` -- plain values, picklable for Ray
    and Slurm. The fault points (:func:`inject`): ``start``; ``checkpoint:N`` before each
    of epoch N's checkpoint writes; ``after_epoch:N`` once epoch N's checkpoints are
    written (before its run-file line).

    A full disk while writing a checkpoint gives a "pending" result (the run is given back,
    not failed) whose error names the disk and the fix.
    """
    from mlbench.logs import worker_run

    run = task["run"]
    try:
        with worker_run(task) as log_epoch:  # logging, OUT/logs/<run id>.jsonl
            inject(task, "start")

            def on_epoch(row: dict) -> None:
                inject(task, "after_epoch", row["epoch"])
                log_epoch(row)

            def before_save(path: Path, epoch: int) -> None:
                try:
                    inject(task, "checkpoint", epoch)
                except OSError as exc:  # an injected full disk: as the write would say it
                    if exc.filename is None:
                        raise OSError(exc.errno, exc.strerror, str(path)) from None
                    raise

            return execute(run, task.get("checkpoint_dir"),
                           bar_position=task.get("bar_position", 1),
                           progress=task.get("progress", False), cache=task.get("cache"),
                           on_epoch=on_epoch, before_save=before_save)
    except Exception as exc:  # a broken run is recorded, the others go on
        from mlbench.files import is_no_space

        if is_no_space(exc):
            return RunResult(run_id=run["id"], status="pending", worker=worker_name(),
                             error=no_space_message(exc, run["id"]))
        return RunResult(run_id=run["id"], status="failed",
                         error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
                         worker=worker_name())


def no_space_message(exc: BaseException, run_id: str) -> str:
    """A full disk met by a run, in one line: the file, its disk, the free space, the fix."""
    import shutil

    from mlbench.files import disk_of

    where = None
    e: BaseException | None = exc
    while e is not None and where is None:
        where = getattr(e, "filename", None)
        e = e.__cause__ or e.__context__
    where = where or "."
    disk = disk_of(where)
    try:
        free = f", {shutil.disk_usage(disk).free / 2**20:.0f} MiB free"
    except OSError:
        free = ""
    return (f"no space left on the disk {disk}{free} (writing {where}); free space there or "
            "choose another --out DIR / --checkpoint-dir, then run the same command again: "
            f"run {run_id} is pending and resumes from its last checkpoint")


# ---------------------------------------------------------------- fault injection (tests)
FAULT_ENV = "MLBENCH_FAULT"
# point -> whether it takes an index (``after_epoch:N``); a new point: an entry here and an
# ``inject(task, point, ...)`` call where it happens
FAULT_POINTS = {"start": False, "checkpoint": True, "after_epoch": True}
HOLD_S = 600.0  # how long a held process waits to be killed


@dataclass(frozen=True)
class Fault:
    """One injected fault: at ``point`` (``index``: which epoch), do ``action`` with ``arg``."""

    point: str
    index: int | None
    action: str
    arg: str


def fault_spec() -> str | None:
    """``$MLBENCH_FAULT``, checked: the driver copies it into every task, so that it reaches
    the worker wherever it runs (a worker process, a Ray task, a Slurm job).

    Raises:
        ValueError: a spec that does not parse (one line).
    """
    spec = os.environ.get(FAULT_ENV) or None
    parse_faults(spec)
    return spec


def parse_faults(spec: str | None) -> list[Fault]:
    """``POINT[:N]:ACTION[:ARG]``, several joined by ``;`` (docs/HARNESS.md, "Fault
    injection (tests)"); ARG is the rest of the fault, colons included."""
    faults = []
    for text in (spec or "").split(";"):
        if not text.strip():
            continue
        point, _, rest = text.strip().partition(":")
        if point not in FAULT_POINTS:
            raise ValueError(f"{FAULT_ENV}: unknown point {point!r} in {text!r}; "
                             f"points: {sorted(FAULT_POINTS)}")
        index = None
        if FAULT_POINTS[point]:
            number, _, rest = rest.partition(":")
            if not number.isdigit():
                raise ValueError(f"{FAULT_ENV}: {point} needs an epoch, e.g. {point}:0:kill; "
                                 f"got {text!r}")
            index = int(number)
        action, _, arg = rest.partition(":")
        if action not in _ACTIONS:
            raise ValueError(f"{FAULT_ENV}: unknown action {action!r} in {text!r}; "
                             f"actions: {sorted(_ACTIONS)}")
        needs = _ARGS.get(action)
        if needs is not None and not needs[0](arg):
            raise ValueError(f"{FAULT_ENV}: {action} needs {needs[1]}, e.g. "
                             f"{text.partition(action)[0]}{action}:{needs[2]}; got {text!r}")
        faults.append(Fault(point, index, action, arg))
    return faults


def inject(task: dict, point: str, index: int | None = None) -> None:
    """Act out the task's faults at ``point`` (``index``: the epoch of ``after_epoch``)."""
    for fault in parse_faults(task.get("fault")):
        if fault.point == point and fault.index == index:
            _ACTIONS[fault.action](fault, task["run"])


def _first_here(path: str, run: dict) -> bool:
    """Whether this process is the first to get here (``PATH.first`` made atomically); the
    first writes ``PID RUN_ID`` to ``path`` (whole, by rename), for the test to read."""
    try:
        os.close(os.open(path + ".first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {run['id']}")
    os.replace(path + ".tmp", path)
    return True


def _raise(fault: Fault, run: dict) -> None:
    message = fault.arg or f"fault injected at {fault.point}"
    for key in ("id", "loss", "seed"):
        message = message.replace("{" + key + "}", str(run.get(key)))
    raise RuntimeError(message)


def _interrupt(fault: Fault, run: dict) -> None:
    raise KeyboardInterrupt(f"fault injected at {fault.point}")


def _kill(fault: Fault, run: dict) -> None:
    if not fault.arg or _first_here(fault.arg, run):
        os.kill(os.getpid(), signal.SIGKILL)


def _hold(fault: Fault, run: dict) -> None:
    if _first_here(fault.arg, run):
        time.sleep(HOLD_S)


def _sleep(fault: Fault, run: dict) -> None:
    time.sleep(float(fault.arg))


def _enospc(fault: Fault, run: dict) -> None:
    import errno

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _seconds(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


# action -> what it does; ARG: raise (the message, {id} {loss} {seed} filled in), kill (a
# file: the first process only, which writes "PID RUN_ID" there), hold (the same file, then
# HOLD_S seconds asleep, to be killed at a known point), sleep (seconds), enospc (an
# OSError "No space left on device", as a full disk)
_ACTIONS: dict[str, Callable[[Fault, dict], None]] = {
    "raise": _raise, "interrupt": _interrupt, "kill": _kill, "hold": _hold, "sleep": _sleep,
    "enospc": _enospc}
# action -> (is its ARG valid, what it needs, an example) for those that need one
_ARGS = {"hold": (bool, "a file", "/tmp/held"), "sleep": (_seconds, "seconds", "2")}


def _run_bar(run: dict, loader, train_cfg, position: int, progress: bool):
    from tqdm import tqdm

    per_epoch = len(loader)
    if train_cfg.max_steps_per_epoch is not None:
        per_epoch = min(per_epoch, train_cfg.max_steps_per_epoch)
    label = f"{run.get('loss', run['config']['loss'])} s{run.get('seed', run['config']['seed'])}"
    return tqdm(total=per_epoch * train_cfg.epochs, desc=label, unit="step", position=position,
                leave=False, disable=not progress, dynamic_ncols=True)



_DATA = Datasets()  # the process's datasets, reused by its runs (a worker runs many)
