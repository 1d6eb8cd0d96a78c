"""Run files: ``OUT/logs/<run id>.jsonl``, one JSON object per line, appended, each with
``ts`` (Unix seconds), ``time`` (ISO 8601, UTC), ``run`` and ``event``:

    claimed    the driver handed the run to an executor (``attempt``, ``executor``, axes)
    started    a worker began computing it (``worker`` host:pid, ``device``, ``gpu``,
               ``resuming``: a ``last.pt`` was there to resume from)
    epoch      one epoch's history row (the engine's: ``epoch``, ``train_loss``,
               ``val_mean_auc``, ... and ``epochs``, the run's total)
    resumed    the attempt resumed from a checkpoint (``from_epoch``)
    finished   stored as finished (``mean_auc``, ``seconds``)
    failed     stored as failed (``error``: its first line, ``failed_step``)
    released   given back to pending (worker died, driver stopped: ``detail``)

The worker writes ``started`` and ``epoch`` lines (:func:`worker_run`; the file is the live
channel the driver's progress bar and ``mlbench status`` read; it needs OUT on a filesystem
the workers see, as Slurm's checkpoints do). The driver writes the others
(:class:`mlbench.logs.driverlog.DriverLog`) and, when it stores a result, the epoch lines a worker
could not write (``"source": "driver"``), so every executor leaves a complete file.

Also ``OUT/logs/commands.json``: the ``run`` invocations (:func:`record_command`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mlbench.db import worker_name
from mlbench.files import atomic_write

LOG_DIR = "logs"
EVENTS = ("claimed", "started", "epoch", "resumed", "finished", "failed", "released")

log = logging.getLogger("mlbench.worker")


# ------------------------------------------------------------------ run files
def log_dir(out: str | Path) -> Path:
    return Path(out) / LOG_DIR


def run_log_path(out: str | Path, run_id: str) -> Path:
    return log_dir(out) / f"{run_id}.jsonl"


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ModuleNotFoundError:
        pass
    return str(obj)


def _clean(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def line(run_id: str, event: str, **fields) -> str:
    """One run-file line (no newline)."""
    now = time.time()
    stamp = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="milliseconds")
    row = {"ts": round(now, 3), "time": stamp, "run": run_id, "event": event}
    row.update(fields)
    return json.dumps(_clean(row), default=_json_default, allow_nan=False)


def append(out: str | Path, run_id: str, event: str, **fields) -> None:
    """Append one event line to ``OUT/logs/<run id>.jsonl`` (one ``write``, O_APPEND)."""
    path = run_log_path(out, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line(run_id, event, **fields) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


_damaged_said: set[str] = set()  # run files whose damage was said in this process


def read_run_log(path: str | Path) -> list[dict]:
    """The lines of a run file (a partial or broken line, e.g. while it is written, is
    skipped); ``[]`` when the file does not exist. Lines that are not UTF-8 JSON (garbage
    bytes, a disk error) are skipped too, said once per file in one warning line: the run
    file is what runs say, never what is stored, so it never stops a command."""
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:  # unreadable (a disk error, a folder of that name): as if absent
        _say_damaged(path, f"cannot read it ({exc.strerror or exc})")
        return []
    rows, bad = [], 0
    lines = data.splitlines()
    for i, raw in enumerate(lines):
        try:
            row = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too
            # an unfinished last line (no newline yet) is one being written: not damage
            bad += i < len(lines) - 1 or data.endswith(b"\n")
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        _say_damaged(path, f"{bad} line(s) are not UTF-8 JSON and were skipped")
    return rows


def _say_damaged(path: str | Path, what: str) -> None:
    if str(path) in _damaged_said:
        return
    _damaged_said.add(str(path))
    log.warning(f"run log {path} is damaged: {what}; it only shows progress (results.db "
                "holds the results): delete it, and the next line written starts it anew")


def current_attempt(rows: list[dict]) -> list[dict]:
    """The lines since the last ``claimed`` (the attempt in progress or last made)."""
    start = 0
    for i, row in enumerate(rows):
        if row.get("event") == "claimed":
            start = i
    return rows[start:]


def summarize(rows: list[dict]) -> dict:
    """What a run file says about its current attempt: ``worker``, ``device``, ``gpu``,
    ``epoch`` (last finished, or None), ``epochs`` (total), ``started`` (ts), ``last`` (ts
    of the last line), ``event`` (the last one)."""
    out = {"worker": None, "device": None, "gpu": None, "epoch": None, "epochs": None,
           "started": None, "last": None, "event": None}
    for row in current_attempt(rows):
        ev = row.get("event")
        out["event"], out["last"] = ev, row.get("ts")
        if ev == "claimed":
            out["started"] = row.get("ts")
            out["epochs"] = row.get("epochs", out["epochs"])
        elif ev == "started":
            for k in ("worker", "device", "gpu"):
                out[k] = row.get(k)
            out["epochs"] = row.get("epochs", out["epochs"])
            if out["started"] is None:
                out["started"] = row.get("ts")
        elif ev == "epoch":
            out["epoch"] = row.get("epoch")
            out["epochs"] = row.get("epochs", out["epochs"])
    return out


# ------------------------------------------------------------------ worker side
_listeners: list[Callable[[dict], None]] = []
_listen_lock = threading.Lock()


def add_listener(fn: Callable[[dict], None]) -> None:
    """Call ``fn(row)`` with every run-file line written in this process (the driver's
    progress bar, when runs compute in its own process)."""
    with _listen_lock:
        _listeners.append(fn)


def remove_listener(fn: Callable[[dict], None]) -> None:
    with _listen_lock:
        if fn in _listeners:
            _listeners.remove(fn)


def _notify(row: dict) -> None:
    with _listen_lock:
        fns = list(_listeners)
    for fn in fns:
        try:
            fn(row)
        except Exception:  # a display hook never breaks a run
            log.debug("run-log listener failed", exc_info=True)


def _gpu() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES") or None


def _device_label(configured: str | None) -> str:
    """Where a run with ``train.device = configured`` computes: ``cpu`` or the GPU's name."""
    if configured == "cpu":
        return "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # no usable CUDA: the run falls back (auto) or fails (cuda) itself
        pass
    return "cpu" if configured in (None, "auto") else str(configured)


class _WorkerLog:
    """Writes a run's ``started`` and ``epoch`` lines from the process computing it."""

    def __init__(self, out: str | Path | None, run: dict):
        self.out, self.run = out, run
        self.run_id = run["id"]
        self.epochs = epochs_of(run)
        self.broken = out is None

    def write(self, event: str, **fields) -> None:
        row = {"run": self.run_id, "event": event, "ts": time.time(), **fields}
        _notify(row)
        if self.broken:
            return
        try:
            append(self.out, self.run_id, event, **fields)
        except OSError as exc:  # OUT not reachable from here: the driver writes them later
            self.broken = True
            log.warning("cannot write %s (%s); the driver writes its epoch lines when the "
                        "run is stored", run_log_path(self.out, self.run_id), exc)

    def on_epoch(self, row: dict) -> None:
        self.write("epoch", epochs=self.epochs, **row)
        epoch = row.get("epoch")
        shown = "?" if epoch is None else epoch + 1
        parts = [f"run {self.run_id} epoch {shown}/{self.epochs}"]
        for key in ("train_loss", "val_mean_auc"):
            value = row.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{key} {value:.4f}")
        log.info(" ".join(parts))


def epochs_of(run: dict) -> int | None:
    try:
        return int(run["config"]["train"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None


@contextlib.contextmanager
def worker_run(task: dict) -> Iterator[Callable[[dict], None]]:
    """Around one run in a worker: configure logging (``task["log_level"]``), write the
    ``started`` line, and yield the ``on_epoch`` callback that writes ``epoch`` lines.

    ``task["log_dir"]`` is the output folder's ``logs`` folder (None: no file).
    """
    from mlbench.logs.console import configure, configured

    if not configured():
        configure(task.get("log_level"), export=False)
    run = task["run"]
    folder = task.get("log_dir")
    out = Path(folder).parent if folder else None
    wlog = _WorkerLog(out, run)
    resuming = False
    if task.get("checkpoint_dir"):
        resuming = (Path(task["checkpoint_dir"]) / run["id"] / "last.pt").is_file()
    device = _device_label((run.get("config") or {}).get("train", {}).get("device"))
    wlog.write("started", worker=worker_name(), device=device,
               gpu=_gpu(), resuming=resuming, epochs=wlog.epochs)
    log.info("run %s started%s (%s / %s / %s / seed %s)", run["id"],
             " (resuming)" if resuming else "", run.get("backbone"), run.get("head"),
             run.get("loss"), run.get("seed"))
    yield wlog.on_epoch


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


# ------------------------------------------------------------------ the commands that ran
COMMAND_FILE = "commands.json"
KEEP_COMMANDS = 50


def record_command(out: str | Path, suite: str | Path, overrides: list[str] | None = None,
                   runs: list[str] | None = None, argv: list[str] | None = None) -> None:
    """Note a ``run`` invocation in ``OUT/logs/commands.json`` (the last
    :data:`KEEP_COMMANDS`): suite file, ``--set`` overrides, the run ids it selected, argv.
    ``mlbench status`` builds each failed run's retry command from the latest one that
    selected it. Best effort: a read-only OUT is fine."""
    import sys

    path = Path(str(suite))
    entry = {"suite": str(path.resolve()) if path.exists() else str(suite),
             "overrides": list(overrides or []), "runs": list(runs or []),
             "cwd": os.getcwd(), "argv": list(sys.argv if argv is None else argv),
             "ts": round(time.time(), 3)}
    try:
        folder = log_dir(out)
        folder.mkdir(parents=True, exist_ok=True)
        history = (read_commands(out) + [entry])[-KEEP_COMMANDS:]
        atomic_write(folder / COMMAND_FILE, json.dumps(history, indent=1), remove_dead=True)
    except OSError:
        pass


def read_commands(out: str | Path) -> list[dict]:
    """The recorded ``run`` invocations, oldest first (``[]`` when none)."""
    try:
        data = json.loads((log_dir(out) / COMMAND_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def command_for(commands: list[dict], run_id: str | None) -> dict | None:
    """The latest invocation that selected ``run_id`` (None: the latest of all)."""
    for entry in reversed(commands):
        if run_id is None or run_id in entry.get("runs", ()):
            return entry
    return None
