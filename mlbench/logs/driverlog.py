"""The driver's side of the run files (``OUT/logs/<run id>.jsonl``, see
:mod:`mlbench.logs.runlog`): ``claimed``, ``resumed``, ``finished``, ``failed`` and ``released``
lines, and the per-worker progress that the files of the runs in flight show."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlbench.logs.runlog import (
    add_listener,
    append,
    current_attempt,
    epochs_of,
    first_line,
    log_dir,
    read_run_log,
    remove_listener,
    run_log_path,
    summarize,
)


class DriverLog:
    """The driver's side of the run files, and the per-worker progress they show.

    Args:
        out: the output folder (``OUT/logs`` is made here).
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.dir = log_dir(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.live: dict[str, dict] = {}  # run id -> summary of the current attempt
        self.on_change: Callable[[], None] | None = None  # called after a line of this process
        self._lock = threading.Lock()
        add_listener(self._heard)

    def close(self) -> None:
        remove_listener(self._heard)

    # events
    def _write(self, run_id: str, event: str, **fields) -> None:
        try:
            append(self.out, run_id, event, **fields)
        except OSError as exc:
            logging.getLogger("mlbench.driver").warning("cannot write the run log of %s: %s",
                                                        run_id, exc)

    def claimed(self, run: dict, executor: str = "") -> None:
        """A run handed to an executor (``run``: the claimed results.db row)."""
        epochs = epochs_of(run)
        self._write(run["id"], "claimed", attempt=run.get("attempts"), executor=executor,
                    backbone=run.get("backbone"), head=run.get("head"), loss=run.get("loss"),
                    seed=run.get("seed"), epochs=epochs)
        with self._lock:
            self.live[run["id"]] = {"worker": None, "device": None, "gpu": None, "epoch": None,
                                    "epochs": epochs, "started": time.time(), "loss":
                                    run.get("loss"), "seed": run.get("seed")}

    def stored(self, run_id: str, result) -> None:
        """A ``RunResult`` stored: the epoch lines no worker wrote (in any attempt: a
        resumed run's earlier epochs are in its earlier attempt), ``resumed``, then
        ``finished`` or ``failed``."""
        every = read_run_log(run_log_path(self.out, run_id))
        rows = current_attempt(every)
        have = {r.get("epoch") for r in every if r.get("event") == "epoch"}
        epochs = None
        for r in rows:
            epochs = r.get("epochs", epochs)
        for row in getattr(result, "history", None) or []:
            if row.get("epoch") not in have:
                self._write(run_id, "epoch", epochs=epochs, source="driver", **row)
        if getattr(result, "resumed_from", None) is not None:
            self._write(run_id, "resumed", from_epoch=result.resumed_from)
        if result.status == "finished":
            mean = next((r[2] for r in result.records if r[0] == "mean_auc" and not r[1]), None)
            self._write(run_id, "finished", mean_auc=mean, worker=result.worker or None,
                        device=result.device or None, train_seconds=result.train_seconds)
        else:
            self._write(run_id, "failed", error=first_line(result.error),
                        failed_step=result.failed_step, worker=result.worker or None)
        self.forget(run_id)

    def released(self, run_id: str, detail: str) -> None:
        self._write(run_id, "released", detail=detail)
        self.forget(run_id)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self.live.pop(run_id, None)

    # progress
    def _heard(self, row: dict) -> None:
        """A line written in this process (inline executor)."""
        with self._lock:
            state = self.live.get(row.get("run"))
            if state is not None:
                _merge(state, row)
        if state is not None and self.on_change is not None:
            self.on_change()

    def poll(self) -> dict[str, dict]:
        """Read the run files of the runs in flight; ``{run id: summary}``."""
        with self._lock:
            ids = list(self.live)
        for run_id in ids:
            rows = read_run_log(run_log_path(self.out, run_id))
            if not rows:
                continue
            summary = summarize(rows)
            with self._lock:
                state = self.live.get(run_id)
                if state is None:
                    continue
                for k in ("worker", "device", "gpu", "epoch"):
                    if summary.get(k) is not None:
                        state[k] = summary[k]
                if summary.get("epochs"):
                    state["epochs"] = summary["epochs"]
        with self._lock:
            return {k: dict(v) for k, v in self.live.items()}

    def postfix(self, poll: bool = True) -> str:
        """``"w0 3f2a1c e2/5 | w1 9b77de e1/5"``: per worker (its GPU, else its pid), the
        run it computes and the epochs done of its total."""
        live = self.poll() if poll else {k: dict(v) for k, v in self.live.items()}
        parts = []
        for run_id, s in live.items():
            parts.append(f"{where(s)} {run_id[:6]} e{_done(s)}/{s.get('epochs') or '?'}")
        return " | ".join(parts)


def _merge(state: dict, row: dict) -> None:
    ev = row.get("event")
    if ev == "started":
        for k in ("worker", "device", "gpu"):
            if row.get(k) is not None:
                state[k] = row[k]
    elif ev == "epoch":
        state["epoch"] = row.get("epoch")
    if row.get("epochs"):
        state["epochs"] = row["epochs"]


def _done(s: dict) -> int:
    return 0 if s.get("epoch") is None else int(s["epoch"]) + 1


def where(s: dict) -> str:
    """Short label of where a run computes: ``gpu1``, ``pid 4242``, ``host:pid``."""
    if s.get("gpu"):
        return f"gpu{s['gpu']}"
    worker = s.get("worker")
    if not worker:
        return "-"
    host, _, pid = str(worker).rpartition(":")
    return f"pid {pid}" if host == socket.gethostname() else str(worker)
