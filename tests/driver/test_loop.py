"""The driver's loop without training: a set-up error before any run, a dead worker's run put
back and reported."""

from __future__ import annotations

import re

import pytest

from mlbench.db import ResultsDB
from tests.helpers import EIGHT_RUNS, tiny_suite


def test_cuda_suite_without_cuda_is_one_set_up_error(tmp_path, monkeypatch):
    # every run failed with "Torch not compiled with CUDA enabled" before
    import torch

    from mlbench.driver import run_suite
    from mlbench.suite import load_suite

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    suite = load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS),
                       overrides=["train.device=cuda"], env={})
    with pytest.raises(ValueError, match=r"`train.device` is 'cuda'.*no CUDA device.*auto"):
        run_suite(suite, suite.runs, progress=False)


def _die_on(run_id, task):
    """The run function of a worker that is killed (as by the OOM killer) while it holds
    ``run_id``; the other runs fail at once (no training needed here)."""
    import os
    import signal

    from mlbench.driver import RunResult

    if task["run"]["id"] == run_id:
        os.kill(os.getpid(), signal.SIGKILL)
    return RunResult(run_id=task["run"]["id"], status="failed", error="not trained")


def test_dead_worker_is_reported_and_its_run_put_back(tmp_path):
    # the parent joined its workers without looking at their exit codes: a killed worker
    # left its run "running" and `run` reported success
    import functools

    from mlbench.driver import Driver, WorkerDied
    from mlbench.driver.executors.local import LocalExecutor
    from mlbench.suite import load_suite

    suite = load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS), env={})
    ids = [r.id for r in suite.runs]
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
    ex = LocalExecutor(workers=2, fn=functools.partial(_die_on, ids[0]), start_method="fork")
    with pytest.raises(WorkerDied) as err:
        Driver(suite.output, ids, ex, tmp_path / "ckpt", progress=False).run()
    msg = str(err.value)
    assert re.search(r"worker 0 \(pid \d+\) died with exit code -9 \(killed by SIGKILL\)", msg)
    assert "worker 1" not in msg
    assert f"its run(s) {ids[0]} are pending again" in msg
    with ResultsDB(suite.output) as db:
        assert db.get_run(ids[0])["status"] == "pending"
        assert db.events(ids[0])[-1]["detail"].startswith("interrupted (worker ")
        # the other worker took every other run; the driver stored each once
        assert db.counts(ids) == {"pending": 1, "running": 0, "finished": 0,
                                  "failed": len(ids) - 1}
