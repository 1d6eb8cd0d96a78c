"""Running a tuned suite: stage 1, selection on validation, stage 2, over the driver."""

from __future__ import annotations

import time

from mlbench.db import ResultsDB
from mlbench.driver import loop
from mlbench.suite import (
    Run,
    filter_runs,
    selected,
    store_plan,
    store_selection,
    unique_runs,
)


def run_tuned(suite, runs: list[Run] | None = None, *, only: dict | None = None,
              progress: bool = True, say: bool = True, run_suite=None, **kwargs) -> dict:
    """Run a tuned suite: stage 1, selection on validation, stage 2 (resumable).

    Args:
        suite: a loaded suite with ``suite.plan``.
        runs: the stage-one runs to do (default ``suite.plan.stage_one()``).
        only: ``--only`` filters, applied to stage two as well.
        progress: progress bars.
        say: print a line per stage (run counts).
        run_suite: the driver's ``run_suite`` (default :func:`mlbench.driver.loop.run_suite`).
        kwargs: passed to ``run_suite`` (workers, executor, retry_failed, ...).

    Returns:
        counts over both stages, ``seconds``, ``to_do`` (runs there were to train),
        ``runs`` (every run of both stages),
        ``stage1``/``stage2`` (run counts) and ``selections``.
    """
    run_suite = run_suite or loop.run_suite
    plan = suite.plan
    t0 = time.perf_counter()
    first = list(runs) if runs is not None else plan.stage_one()
    with ResultsDB(suite.output) as db:
        store_plan(db, plan)
    if say:
        print(plan.describe(), flush=True)
    to_do = 0  # runs there were to train, both stages
    if first:
        to_do += run_suite(suite, first, progress=progress, **kwargs).get("to_do", 0)
    second: list[Run] = []
    with ResultsDB(suite.output) as db:
        sel = selected(db, plan)
        store_selection(db, sel)
    if plan.stages == 2:
        second = filter_runs(plan.stage_two(sel), only, strict=False)
        if say:
            more = " and the cells' added seeds" if any(c.seeds != plan.seeds
                                                         for c in plan.cells) else ""
            print(f"tune: stage 2: {len(second)} runs (chosen settings on seeds "
                  f"{plan.seeds[1:]}{more})", flush=True)
        if second:
            to_do += run_suite(suite, second, progress=progress, **kwargs).get("to_do", 0)
    done = unique_runs(first + second)
    with ResultsDB(suite.output) as db:
        counts = db.counts([r.id for r in done])
        sel = selected(db, plan)
        store_selection(db, sel)
    return {**counts, "seconds": time.perf_counter() - t0, "to_do": to_do, "runs": done,
            "stage1": len(first), "stage2": len(second), "selections": sel}
