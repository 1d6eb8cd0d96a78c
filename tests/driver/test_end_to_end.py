"""End to end on a tiny CXR14-sim: the micro-suite, determinism, resume after a kill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlbench.cli import main
from mlbench.db import ResultsDB
from mlbench.leaderboard.analysis import build
from tests.helpers import EIGHT_RUNS, REPO, kill_once_a_run_is_stored, tiny_suite, write_suite


def suite_file(tmp_path) -> Path:
    """The 8-run tiny suite on test_resnet."""
    suite = tiny_suite(None, tmp_path / "out", EIGHT_RUNS, **{"grid.backbone": ["test_resnet"]})
    return Path(write_suite(tmp_path / "suite.yaml", suite))


TIMING = ("train_seconds", "train_images_per_s")  # differ between any two executions


def _metric_dump(db: ResultsDB) -> dict:
    return {(r["run_id"], r["name"], r["finding"]): (r["value"], r["lo"], r["hi"])
            for r in db.metrics() if r["name"] not in TIMING}


@pytest.mark.slow
def test_micro_suite_end_to_end(tmp_path, capsys):
    path = suite_file(tmp_path)  # 2 losses x 2 heads x 2 seeds, 1 epoch of 2 steps
    assert main(["run", str(path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "cxr14-sim" / "test_list.txt").exists()  # sim generated into the output
    with ResultsDB(out) as db:
        runs = db.runs()
        assert len(runs) == 8 and {r["status"] for r in runs} == {"finished"}
        for r in runs:
            m = db.metrics(r["id"])
            assert sum(x["name"] == "auc" for x in m) == 14
            assert sum(x["name"] == "mean_auc" for x in m) == 1
            scores, targets = db.predictions(r["id"])
            assert scores.shape == targets.shape and scores.shape[1] == 14
            assert np.all((scores > 0) & (scores < 1))
            assert [e["epoch"] for e in db.epochs(r["id"])] == [0]
            assert r["config"]["loss"] in ("bce", "bce+0.1*msml")
        df = build(db)
        first = dict(db.get_run(runs[0]["id"]))
        metrics = _metric_dump(db)
    assert len(df) == 4
    for loss in ("bce", "bce+0.1*msml"):
        assert loss in printed
    assert "== test_resnet / linear ==" in printed and "== test_resnet / bilinear ==" in printed
    # a rerun finds everything finished and does nothing
    assert main(["run", str(path), "--no-progress"]) == 0
    with ResultsDB(out) as db:
        assert db.get_run(first["id"])["finished"] == first["finished"]
        assert _metric_dump(db) == metrics
    # the same run in a fresh folder gives the same numbers bit for bit (CPU)
    assert main(["run", str(path), "--no-progress", "--out", str(tmp_path / "again"),
                 "--only", f"loss=bce,head=linear,seed={first['seed']}"]) == 0
    with ResultsDB(tmp_path / "again") as db:
        again = _metric_dump(db)
        s2, _ = db.predictions(first["id"])
    assert again and all(metrics[k] == v for k, v in again.items())
    with ResultsDB(out) as db:
        s1, _ = db.predictions(first["id"])
    assert np.array_equal(s1, s2)


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    suite = tiny_suite(None, tmp_path / "out", EIGHT_RUNS, seeds=[0, 1, 2], grid={
        "backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce", "msml"]},
        train={"epochs": 2, "max_steps_per_epoch": 3})
    path = Path(write_suite(tmp_path / "suite.yaml", suite))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "mlbench", "run", str(path), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    kill_once_a_run_is_stored(proc, out, timeout=240)  # as soon as the first run is finished
    with ResultsDB(out) as db:
        before = {r["id"]: r for r in db.runs("finished")}
        interrupted = [r["id"] for r in db.runs("running")]
        assert before and interrupted and len(before) < 6
        before_metrics = {k: v for k, v in _metric_dump(db).items() if k[0] in before}
    # the rerun (two worker processes) completes the suite
    rerun = subprocess.run(cmd + ["--workers", "2"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with ResultsDB(out) as db:
        runs = db.runs()
        assert len(runs) == 6 and {r["status"] for r in runs} == {"finished"}
        for r in runs:
            events = [e["status"] for e in db.events(r["id"])]
            assert events.count("finished") == 1, events  # exactly one finished record
            assert sum(x["name"] == "mean_auc" for x in db.metrics(r["id"])) == 1
        for rid, old in before.items():  # finished runs were not redone
            assert db.get_run(rid)["finished"] == old["finished"]
            assert db.get_run(rid)["attempts"] == 1
        for rid in interrupted:  # the killed run was restarted from scratch
            assert db.get_run(rid)["attempts"] == 2
            assert "pending" in [e["status"] for e in db.events(rid)][1:]
        after = _metric_dump(db)
        assert all(after[k] == v for k, v in before_metrics.items())
