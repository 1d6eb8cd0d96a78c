"""A real tiny suite run: run files, MLflow and TensorBoard read back, `status` agreeing with
results.db during and after the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from mlbench import logs
from mlbench.cli import main
from mlbench.db import ResultsDB
from mlbench.logs import collect
from tests.helpers import REPO, tiny_suite
from tests.helpers import write_suite as write

from .test_tracking import mlflow_runs, tb_scalars

EVENTS_OF_A_RUN = ["claimed", "started", "epoch", "epoch", "finished"]

# mlflow 3 with SQLAlchemy 2.1: a deprecation inside mlflow's store, not ours
pytestmark = [pytest.mark.observability,
              pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")]


def write_suite(tmp_path, **train) -> str:
    """The 2-run tiny suite (named "obs") into tmp_path/suite.yaml, the sim generated into
    tmp_path/out/cxr14-sim."""
    return write(tmp_path / "suite.yaml", tiny_suite(None, tmp_path / "out", name="obs",
                                                     train=train))


@pytest.mark.slow
def test_tiny_run_with_mlflow_and_tensorboard(tmp_path, capsys):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("tensorboard")
    from mlflow.tracking import MlflowClient

    path = write_suite(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--mlflow", "--tensorboard", "--no-progress",
                 "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] == 2 and summary["failed"] == 0
    with ResultsDB(out, readonly=True) as db:
        runs = {r["id"]: r for r in db.runs()}
        epochs = {i: db.epochs(i) for i in runs}
        mean = {i: next(m for m in db.metrics(i) if m["name"] == "mean_auc") for i in runs}

    for run_id in runs:  # the run files, written in this process (inline executor)
        rows = logs.read_run_log(logs.run_log_path(out, run_id))
        assert [r["event"] for r in rows] == EVENTS_OF_A_RUN
        assert rows[1]["worker"].endswith(f":{os.getpid()}")
        assert [r["train_loss"] for r in rows if r["event"] == "epoch"] == pytest.approx(
            [e["train_loss"] for e in epochs[run_id]])
        assert rows[-1]["mean_auc"] == pytest.approx(mean[run_id]["value"])

    uri = "sqlite:///" + str((out / "mlflow.db").resolve())
    got = mlflow_runs(uri, "obs")
    assert set(got) == set(runs)
    client = MlflowClient(tracking_uri=uri)
    for run_id, r in runs.items():
        m = got[run_id]
        assert m.info.status == "FINISHED"
        assert m.data.tags["loss"] == r["loss"] and m.data.tags["seed"] == "0"
        assert m.data.params["train.epochs"] == "2" and m.data.params["backbone"] == "test_resnet"
        assert m.data.metrics["test/mean_auc"] == pytest.approx(mean[run_id]["value"])
        assert m.data.metrics["test/mean_auc_lo"] == pytest.approx(mean[run_id]["lo"])
        hist = sorted(client.get_metric_history(m.info.run_id, "val_mean_auc"),
                      key=lambda x: x.step)
        assert [(h.step, h.value) for h in hist] == [
            (e["epoch"], pytest.approx(e["val_mean_auc"])) for e in epochs[run_id]]
        arts = client.list_artifacts(m.info.run_id, "checkpoints")
        assert [a.path for a in arts] == ["checkpoints/best.pt"]
        sc = tb_scalars(out / "tb" / run_id)
        assert [s for s, _ in sc["train_loss"]] == [0, 1]
        assert sc["test/mean_auc"] == [(1, pytest.approx(mean[run_id]["value"]))]

    # export into the same store: idempotent by run id
    assert main(["export", "mlflow", str(out)]) == 0
    assert "0 logged, 0 replaced, 2 unchanged" in capsys.readouterr().out
    assert len(mlflow_runs(uri, "obs")) == 2

    st = collect(out)
    assert st["counts"] == {"pending": 0, "running": 0, "finished": 2, "failed": 0, "total": 2}
    assert st["eta_s"] == 0.0 and st["mean_run_s"] > 0


def _db_state(out) -> tuple:
    with ResultsDB(out, readonly=True) as db:
        return tuple(sorted((r["id"], r["status"]) for r in db.runs()))


@pytest.mark.slow
def test_status_agrees_with_results_db_during_a_two_worker_run(tmp_path, capsys):
    """Local worker processes (spawned): status polled while the driver writes; run files
    written by the workers; the screen captured at the end is the report's example."""
    path = write_suite(tmp_path, epochs=3)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mlbench", "run", str(path), "--workers", "2", "--no-progress",
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen_running, checked = [], 0
    try:
        deadline = time.time() + 400
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
            if not (out / "results.db").exists():
                continue
            try:
                before = _db_state(out)
                assert main(["status", str(out), "--format", "json"]) == 0
                st = json.loads(capsys.readouterr().out)
                after = _db_state(out)
            except Exception:  # the database is being created
                capsys.readouterr()
                continue
            if before != after:  # it moved while status read it: nothing to compare
                continue
            checked += 1
            states = dict(before)
            for status in ("pending", "running", "finished", "failed"):
                assert st["counts"][status] == sum(s == status for s in states.values())
            assert {r["id"] for r in st["running"]} == {
                i for i, s in states.items() if s == "running"}
            for r in st["running"]:
                if r["epochs_done"]:
                    seen_running.append(r)
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1]
    assert proc.returncode == 0, err[-3000:]
    assert checked >= 1
    assert not any("Traceback" in line for line in err.splitlines())

    workers = set()
    for run_id, _ in _db_state(out):
        rows = logs.read_run_log(logs.run_log_path(out, run_id))
        assert [r["event"] for r in rows] == ["claimed", "started", "epoch", "epoch", "epoch",
                                             "finished"]
        assert "source" not in rows[2]  # written by the worker, not filled in by the driver
        workers.add(rows[1]["worker"])
    assert proc.pid not in {int(w.rsplit(":", 1)[1]) for w in workers}  # spawned workers
    for r in seen_running:  # live: where and how far
        assert r["worker"] in workers and 1 <= r["epochs_done"] <= 3 and r["epochs"] == 3
    st = collect(out)
    assert st["counts"]["finished"] == 2 and not st["running"] and st["eta_s"] == 0.0
    screen = subprocess.run([sys.executable, "-m", "mlbench", "status", str(out)], cwd=REPO,
                            env=env, capture_output=True, text=True, check=True).stdout
    (tmp_path / "status.txt").write_text(screen)
    assert "2 runs: 2 finished, 0 running, 0 pending, 0 failed" in screen


@pytest.mark.slow
def test_slurm_jobs_write_run_files_and_the_driver_tracks_them(tmp_path):
    """Slurm through submitit's local executor (each run its own job process): the jobs
    write their run files, the driver alone logs to MLflow."""
    pytest.importorskip("submitit")
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlbench.driver import run_suite
    from mlbench.suite import load_suite

    suite = load_suite(write_suite(tmp_path), overrides=["tracking.mlflow=true"])
    runs = [r for r in suite.runs if r.loss == "bce"]
    summary = run_suite(suite, runs, progress=False, executor="slurm", slurm_cluster="local",
                        slurm_folder=str(tmp_path / "jobs"), gpus_per_run=0, time_min=10)
    assert summary["finished"] == 1
    out = suite.output
    rows = logs.read_run_log(logs.run_log_path(out, runs[0].id))
    assert [r["event"] for r in rows] == EVENTS_OF_A_RUN
    assert rows[0]["executor"].startswith("jobs on submitit's local executor")
    assert int(rows[1]["worker"].rsplit(":", 1)[1]) != os.getpid()  # the job's process
    assert "source" not in rows[2]
    got = mlflow_runs("sqlite:///" + str((out / "mlflow.db").resolve()), "obs")
    assert set(got) == {runs[0].id}
    assert got[runs[0].id].data.metrics["test/mean_auc"] == pytest.approx(rows[-1]["mean_auc"])


@pytest.mark.slow
def test_ray_tasks_write_run_files(tmp_path):
    """Ray tasks (a local Ray instance) write their run files too."""
    ray = pytest.importorskip("ray")
    from mlbench.driver import run_suite
    from mlbench.suite import load_suite

    suite = load_suite(write_suite(tmp_path))
    runs = [r for r in suite.runs if r.loss == "bce"]
    mine = not ray.is_initialized()  # another test's instance (test_executors) is used as is
    if mine:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_suite(suite, runs, progress=False, executor="ray")
    finally:
        if mine:
            ray.shutdown()
    assert summary["finished"] == 1
    rows = logs.read_run_log(logs.run_log_path(suite.output, runs[0].id))
    assert [r["event"] for r in rows] == EVENTS_OF_A_RUN
    assert rows[0]["executor"].startswith("Ray tasks")
    assert int(rows[1]["worker"].rsplit(":", 1)[1]) != os.getpid()  # a Ray worker process
    assert "source" not in rows[2]
