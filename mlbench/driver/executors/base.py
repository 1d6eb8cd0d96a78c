"""The executor interface, what comes back from it, and what every executor shares: the
default run function and the resources a run asks for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from mlbench.driver.worker import run_task


@dataclass
class Outcome:
    """One run coming back to the driver.

    ``kind`` "done": ``result`` is the run's ``RunResult`` (finished or failed);
    "lost": the process computing it died (``detail`` says which); the driver gives the
    run back to pending, and a rerun resumes it from its checkpoint.
    """

    run_id: str
    kind: str
    result: Any = None
    detail: str = ""


@dataclass
class WorkerDeath:
    """A local worker process that ended with a non-zero exit code."""

    index: int
    pid: int
    exitcode: int | None
    run_id: str | None


class Executor:
    """Computes runs for the driver. Subclasses implement every method.

    Args:
        fn: the run function every worker calls on a task (default
            ``mlbench.driver.worker.run_task``); picklable for worker processes, Ray, Slurm.
        options: the fields of ``options_class`` (``mlbench.execution``), as keywords; the
            instance is ``self.options``.
    """

    name = "executor"
    options_class: ClassVar[type | None] = None  # its options (mlbench.execution)

    def __init__(self, fn: Callable | None = None, **options):
        self.fn = fn or run_task
        self.options = self.options_class(**options) if self.options_class else None

    def start(self) -> None:
        """Acquire what it needs (processes, a Ray connection, a submitit folder)."""

    def free_slots(self) -> int:
        """How many more runs it accepts now (the driver claims no more than that)."""
        raise NotImplementedError

    def submit(self, task: dict) -> None:
        """Start computing ``task`` (``{"run": {...}, "checkpoint_dir": ...}``)."""
        raise NotImplementedError

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes that arrived within ``timeout`` seconds (possibly none)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources after the last outcome (workers exit, connections close)."""

    def abort(self) -> None:
        """Stop at once (driver interrupted): running work is abandoned, resumable."""
        self.close()

    def deaths(self) -> list[WorkerDeath]:
        """Local worker processes that died (the driver reports them)."""
        return []

    def describe(self) -> str:
        return self.name


def per_run(train: dict, cpus: float | None, gpus: float | None, cuda: bool = True) -> dict:
    """What one run asks of a Ray or Slurm node: ``num_cpus`` (default the run's torch threads
    plus its DataLoader workers) and ``num_gpus`` (default 1 when ``cuda`` is there and the
    run's device is not cpu, else 0)."""
    if cpus is None:
        cpus = int(train.get("threads") or 1) + int(train.get("num_workers") or 0)
    if gpus is None:
        gpus = 1 if cuda and train.get("device") != "cpu" else 0
    return {"num_cpus": cpus, "num_gpus": gpus}


class WorkerDied(RuntimeError):
    """A local worker process ended with a non-zero exit code (crash, OOM killer, signal)."""
