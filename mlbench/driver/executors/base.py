"""The executor interface and what comes back from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    """Computes runs for the driver. Subclasses implement every method."""

    name = "executor"

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


class WorkerDied(RuntimeError):
    """A local worker process ended with a non-zero exit code (crash, OOM killer, signal)."""
