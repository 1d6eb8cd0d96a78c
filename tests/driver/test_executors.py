"""Executors: Ray tasks (a real local Ray instance) and Slurm jobs (submitit's local
executor) compute the same results as the local executor, and the driver stores each run
once whatever dies: a task's process, or the driver itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from mlbench.db import ResultsDB
from mlbench.driver import run_suite
from mlbench.suite import load_suite
from tests.helpers import REPO, kill_once_a_run_is_stored, stored_results, tiny_suite

pytestmark = [pytest.mark.scale, pytest.mark.slow]


def _suite(root, out, **changes):
    return load_suite(tiny_suite(root, out, **changes), env={})


def _leaderboard(out) -> list[dict]:
    """The leaderboard's rows without timing-derived columns (training cost differs
    between any two executions; every statistic must not)."""
    import io

    import pandas as pd

    from mlbench.leaderboard import leaderboard

    df = pd.read_csv(io.StringIO(leaderboard(out, fmt="csv")))
    timing = [c for c in df.columns if c in ("cost",) or "seconds" in c or "per_s" in c]
    return df.drop(columns=timing).to_dict("records")


@pytest.fixture(scope="module")
def local_ref(sim_root, tmp_path_factory):
    """The 2-run tiny suite (bce, msml; seeds 0 and 1) through the local executor."""
    out = tmp_path_factory.mktemp("local") / "out"
    suite = _suite(sim_root, out, seeds=[0, 1])
    summary = run_suite(suite, suite.runs, progress=False)
    assert summary["finished"] == 4
    return out


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_ray_matches_local_and_retries_a_task_that_killed_its_process(
        sim_root, local_ref, ray_instance, tmp_path, monkeypatch):
    suite = _suite(sim_root, tmp_path / "ray")
    marker = tmp_path / "killed"  # the first task to start is SIGKILLed, once
    monkeypatch.setenv("MLBENCH_FAULT", f"start:kill:{marker}")
    summary = run_suite(suite, suite.runs, progress=False, executor="ray", max_retries=2)
    assert summary["finished"] == 2 and summary["failed"] == 0
    assert marker.exists()  # the first attempt did die
    victim = marker.read_text().split()[1]
    with ResultsDB(suite.output) as db:
        assert db.get_run(victim)["attempts"] == 1  # retried by Ray within one claim
        for run in db.runs():
            assert [e["status"] for e in db.events(run["id"])].count("finished") == 1
    ref = stored_results(local_ref)
    got = stored_results(suite.output)
    assert got and all(got[k] == ref[k] for k in got)  # bit for bit, whichever executor
    only_seed0 = _suite(sim_root, local_ref)  # the reference's seed-0 runs, by id
    assert {r.id for r in only_seed0.runs} == set(got)


def test_ray_driver_killed_then_rerun_loses_and_duplicates_nothing(
        sim_root, local_ref, ray_instance, tmp_path):
    cfg = tiny_suite(sim_root, tmp_path / "out", seeds=[0, 1], **{"train.epochs": 2})
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mlbench", "run", str(path), "--no-progress",
           "--executor", "ray", "--ray-address", ray_instance]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    # kill the driver once a first result is stored and others are in flight
    kill_once_a_run_is_stored(proc, out, timeout=180)
    with ResultsDB(out) as db:
        before = {r["id"]: r["finished"] for r in db.runs("finished")}
        interrupted = [r["id"] for r in db.runs("running")]
    assert before and interrupted
    suite = load_suite(path, env={})
    summary = run_suite(suite, suite.runs, progress=False, executor="ray")
    assert summary["finished"] == 4
    with ResultsDB(out) as db:
        for run in db.runs():
            events = [e["status"] for e in db.events(run["id"])]
            assert events.count("finished") == 1, events
            assert sum(m["name"] == "mean_auc" for m in db.metrics(run["id"])) == 1
        for rid, at in before.items():  # stored results were not redone
            assert db.get_run(rid)["finished"] == at and db.get_run(rid)["attempts"] == 1
        for rid in interrupted:  # given back by the rerun, then done once
            assert db.get_run(rid)["attempts"] == 2
    assert stored_results(out) == stored_results(local_ref)
    lb = _leaderboard(out)
    assert len(lb) == 2 and str(lb) == str(_leaderboard(local_ref))  # NaN == NaN as text


def test_slurm_jobs_through_submitit_match_local(sim_root, local_ref, tmp_path):
    pytest.importorskip("submitit")
    suite = _suite(sim_root, tmp_path / "slurm")
    summary = run_suite(suite, suite.runs, progress=False, executor="slurm",
                        slurm_cluster="local", slurm_folder=str(tmp_path / "jobs"),
                        gpus_per_run=0, time_min=10)
    assert summary["finished"] == 2 and summary["failed"] == 0
    got, ref = stored_results(suite.output), stored_results(local_ref)
    assert got and all(got[k] == ref[k] for k in got)
    with ResultsDB(suite.output) as db:  # each run was its own job, in its own process
        workers = {db.get_run(r.id)["device"] for r in suite.runs}
    assert workers == {"cpu"}
