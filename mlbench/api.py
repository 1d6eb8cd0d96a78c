"""The Python API: ``mlbench.run`` and ``mlbench.results``, what ``python -m mlbench run`` and
``leaderboard`` do, as functions that return objects and raise exceptions::

    import mlbench

    done = mlbench.run("suites/quickstart.yaml", overrides=["train.epochs=2"], out="runs/try")
    res = mlbench.results(done.output)        # or done.results()
    res.leaderboard                           # one row per backbone/head/loss, with statistics
    res.runs, res.per_class                   # one row per run; one per run and finding

The run steps are the command's own (:func:`mlbench.commands.run.load_runs` and
``execute``), the leaderboard is the command's frame (:func:`mlbench.leaderboard.
leaderboard_frame`, statistics of SPEC §5.1), so a script and the command line give the
same runs, ids and numbers. Errors are :class:`MlbenchError` (the command line's
``CommandError``) with the one-line message the command prints and its exit code as
``code``. Nothing global is changed: no logging set-up, no signal handler left behind, no
environment variable.

Local workers are started with the ``spawn`` method, which imports the calling script's
``__main__`` module again in each worker: in a script with no
``if __name__ == "__main__":`` guard, call ``mlbench.run`` under such a guard (or with
``workers=1`` and the local executor, where runs train in the calling process).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mlbench.commands.common import CommandError, results_db_problem
from mlbench.commands.run import execute, failures, load_runs

MlbenchError = CommandError

__all__ = ["MlbenchError", "Results", "RunResult", "results", "run"]


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` did: counts over the selected runs, the wall time, the failures.

    ``failed_runs``: one dict per failed run (``id``, ``backbone``, ``head``, ``loss``,
    ``seed``, ``error``: the first line of its recorded error). ``ok``: every run finished.
    """

    suite: str
    output: Path
    ids: tuple[str, ...]
    finished: int
    failed: int
    seconds: float
    failed_runs: tuple[dict, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.finished == len(self.ids)

    def results(self, reference: str | None = None) -> Results:
        """``mlbench.results(self.output)``."""
        return results(self.output, reference=reference)


@dataclass(frozen=True)
class Results:
    """The tables of a results folder, as pandas DataFrames (numbers unrounded).

    ``runs``: one row per run (id, backbone, head, loss, seed, status, error, device, ...,
    and its stored scalar metrics such as ``mean_auc``, ``map``, ``train_seconds``).
    ``per_class``: one row per finished run and finding (``auc``, ``ap``).
    ``leaderboard``: the leaderboard's frame (``python -m mlbench leaderboard OUT --format
    csv`` has the same numbers): one row per backbone/head/loss[/setup] with ``mean_auc``,
    ``std``, ``ci_lo``/``ci_hi``, ``delta`` vs the reference with its CI, ``p``, ``p_holm``,
    ``significant``, ``map``, ``lrap``, ``ranking_loss``, ``cost`` and a column per finding;
    ``leaderboard.attrs["notes"]`` holds its footnotes. The leaderboard is that of the runs'
    own test split (``nih``); ``test_sets`` maps every test set the runs were scored on
    (``eval.test_sets``) to its own leaderboard frame, with the same columns and statistics
    (``{"nih": leaderboard}`` when there is no other), ``transfer`` one row per setup and
    pair of test sets with the ranking agreement (Kendall's tau, its CI, the verdict) and
    ``deltas`` Δ vs the reference per test set side by side (both empty with one test set).
    """

    output: Path
    runs: object
    per_class: object
    leaderboard: object
    reference: str
    test_sets: dict = field(default_factory=dict)
    transfer: object = None
    deltas: object = None

    @property
    def notes(self) -> list[str]:
        """The leaderboard's footnotes (what the CIs mean, classes left out, ...)."""
        return list(self.leaderboard.attrs.get("notes", []))


def run(suite, overrides=(), out=None, *, only=(), retry_failed: bool = False,
        progress: bool = False, **execution) -> RunResult:
    """Run a suite as ``python -m mlbench run`` does (resumable; finished runs are skipped).

    Args:
        suite: a suite YAML path, or the suite as a mapping (as the YAML would parse).
        overrides: ``KEY=VALUE`` strings, as ``--set`` (``["train.epochs=2", "seeds=[0]"]``).
        out: the output folder (default: the suite's ``output``).
        only: ``--only`` filters (``["loss=bce,msml", "head=linear"]``).
        retry_failed: run failed runs again.
        progress: progress bars (default off).
        execution: the execution options by their suite key (``workers``, ``executor``,
            ``gpus``, ``ray_address``, ``partition``, ...; ``mlbench.execution.OPTIONS``).

    Raises:
        MlbenchError: a bad suite, override or option, unusable data or results folder, a
            worker that died (``code`` 3); ``str(exc)`` is the command's one-line message.
    """
    from mlbench.execution import OPTIONS

    unknown = sorted(set(execution) - set(OPTIONS))
    if unknown:
        raise MlbenchError(f"unknown execution option(s) {unknown}; expected some of "
                           f"{sorted(OPTIONS)}")
    if isinstance(overrides, str):
        overrides = [overrides]
    loaded, runs, _ = load_runs(suite, overrides, out, only, workers=execution.get("workers"))
    summary = execute(loaded, runs, only, progress=progress, retry_failed=retry_failed,
                      **execution)
    runs = summary.get("runs", runs)
    ids = tuple(r.id for r in runs)
    return RunResult(loaded.name, Path(loaded.output), ids, summary["finished"],
                     summary["failed"], float(summary["seconds"]),
                     tuple(failures(loaded.output, set(ids))))


def results(out, reference: str | None = None) -> Results:
    """The runs, per-class metrics and leaderboard of a results folder (or its results.db).

    Args:
        out: the output folder of a suite run.
        reference: the loss the leaderboard compares with (default: the suite's
            ``eval.reference``).

    Raises:
        MlbenchError: no results.db there, or it is damaged (the message says which).
    """
    import pandas as pd

    from mlbench.db import ResultsDB
    from mlbench.leaderboard import leaderboard_frame
    from mlbench.leaderboard.table import test_set_boards

    path = Path(out)
    try:
        with ResultsDB(path, readonly=True) as db:
            board, _ = leaderboard_frame(db, reference)
            runs = db.runs()
            metrics = db.metrics()
            ref = board.attrs.get("reference", reference or db.get_meta("reference", "bce"))
            sets = test_set_boards(db, board, ref)
    except FileNotFoundError as exc:
        raise MlbenchError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise MlbenchError(results_db_problem(path, exc)) from None
    if sets is None:
        test_sets, transfer, deltas = {"nih": board}, pd.DataFrame(), pd.DataFrame()
    else:
        test_sets = {b.name: b.frame for b in sets["boards"]}
        transfer, deltas = pd.DataFrame(sets["transfer"]), sets["deltas"]
    return Results(path, _runs_frame(pd, runs, metrics), _per_class_frame(pd, runs, metrics),
                   board, ref, test_sets, transfer, deltas)


_RUN_COLUMNS = ("id", "backbone", "head", "loss", "seed", "status", "error", "device",
                "worker", "attempts", "started", "finished")


def _runs_frame(pd, runs: list[dict], metrics: list[dict]):
    scalars: dict = {}
    for m in metrics:
        if not m["finding"]:
            scalars.setdefault(m["run_id"], {})[m["name"]] = m["value"]
    rows = [{**{k: r.get(k) for k in _RUN_COLUMNS}, **scalars.get(r["id"], {})} for r in runs]
    return pd.DataFrame(rows, columns=None if rows else list(_RUN_COLUMNS))


def _per_class_frame(pd, runs: list[dict], metrics: list[dict]):
    by_id = {r["id"]: r for r in runs}
    cells: dict = {}
    for m in metrics:
        if m["finding"] and m["run_id"] in by_id:
            cells.setdefault((m["run_id"], m["finding"]), {})[m["name"]] = m["value"]
    rows = []
    for (run_id, finding), values in cells.items():
        r = by_id[run_id]
        rows.append({"run_id": run_id, "backbone": r["backbone"], "head": r["head"],
                     "loss": r["loss"], "seed": r["seed"], "finding": finding, **values})
    columns = ["run_id", "backbone", "head", "loss", "seed", "finding", "auc", "ap"]
    return pd.DataFrame(rows, columns=None if rows else columns)
