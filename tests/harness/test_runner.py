"""Driver and worker pieces that need no training: metric records, the sim folder guard."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.driver import prepare_data
from mlbench.layout import SIM_MARKER
from mlbench.stats import bootstrap_ci, evaluate_scores, metric_records

from .conftest import FINDINGS, fake_predictions


def test_metric_records_match_metrics_module():
    scores, targets = fake_predictions(np.random.default_rng(0), 1.0)
    targets[:, 3] = 0  # a class without positives: NaN, left out of the mean
    rows = {(n, f): (v, lo, hi) for n, f, v, lo, hi in
            metric_records(targets, scores, FINDINGS, n_boot=30, seed=1)}
    point = evaluate_scores(targets, scores)
    ci = bootstrap_ci(targets, scores, n_boot=30, seed=1)
    assert rows[("mean_auc", "")] == (point["mean_auc"], ci["mean_auc_lo"], ci["mean_auc_hi"])
    assert rows[("map", "")][0] == point["mean_ap"]
    assert np.isnan(rows[("auc", "F3")][0])
    assert rows[("auc", "F0")] == (point["auc"][0], ci["auc_lo"][0], ci["auc_hi"][0])
    assert {("lrap", ""), ("ranking_loss", "")} <= set(rows)  # label-ranking metrics
    assert len(rows) == 4 + 2 * 14


def test_sim_folder_made_with_other_parameters_is_refused(tmp_path):
    root = tmp_path / "sim"
    root.mkdir()
    (root / "test_list.txt").write_text("")
    (root / SIM_MARKER).write_text(json.dumps({"images": 10, "size": 32, "seed": 0}))
    ds = {"root": str(root), "sim": {"images": 20, "size": 32, "seed": 0}, "image_size": 32}
    with pytest.raises(RuntimeError, match="delete .* or set dataset.root"):
        prepare_data(ds, progress=False)


def test_empty_validation_split_is_one_clear_set_up_error(tmp_path):
    # val_fraction 0 passes the suite schema; without this check every run failed later
    # with torch.cat's "expected a non-empty list of Tensors" from the validation pass.
    ds = {"root": str(tmp_path / "sim"), "sim": {"images": 40, "size": 16, "seed": 0},
          "image_size": 16, "val_fraction": 0.0, "split_seed": 0, "view": "all",
          "missing": "error"}
    with pytest.raises(ValueError, match=r"`val` split .* is empty.*dataset.val_fraction"):
        prepare_data(ds, progress=False)


def test_cuda_suite_without_cuda_is_one_set_up_error(tmp_path, monkeypatch):
    # every run failed with "Torch not compiled with CUDA enabled" before
    import torch

    from mlbench.driver import run_suite
    from mlbench.suite import load_suite

    from .conftest import tiny_suite

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    suite = load_suite(tiny_suite(tmp_path), overrides=["train.device=cuda"], env={})
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

    from .conftest import tiny_suite

    suite = load_suite(tiny_suite(tmp_path), env={})
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


def test_sim_suite_pointed_at_a_folder_of_other_data_is_refused(tmp_path):
    # with `sim` still set, a real-data folder was trained on, labelled sim, ids ignoring it
    root = tmp_path / "nih"
    root.mkdir()
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\n")
    (root / "test_list.txt").write_text("")
    ds = {"root": str(root), "sim": {"images": 20, "size": 32, "seed": 0}, "image_size": 32}
    with pytest.raises(ValueError) as err:
        prepare_data(ds, progress=False)
    msg = str(err.value)
    assert "`dataset.root`" in msg and "`dataset.sim`" in msg and str(root) in msg
    assert "--set dataset.sim=null" in msg and "empty or new folder" in msg
    assert sorted(p.name for p in root.iterdir()) == ["Data_Entry_2017.csv", "test_list.txt"]


def test_sim_folder_marked_before_generation_resumes(tmp_path):
    from mlbench.suite import sim_root_problem

    sim = {"images": 20, "size": 32, "seed": 0}
    root = tmp_path / "sim"
    ds = {"root": str(root), "sim": sim}
    assert sim_root_problem(ds) is None  # absent
    root.mkdir()
    assert sim_root_problem(ds) is None  # empty
    (root / "images").mkdir()  # a generation killed half-way, marked first
    (root / SIM_MARKER).write_text(json.dumps(sim))
    assert sim_root_problem(ds) is None
    (root / SIM_MARKER).unlink()
    assert "--set dataset.sim=null" in sim_root_problem(ds)


def test_cache_dir_keeps_the_dataset_folder_untouched(tmp_path):
    """dataset.cache_dir: the prepared cache goes there (a read-only ROOT stays as it is) and
    the splits open from it."""
    from mlbench.driver import Datasets

    root, cache = tmp_path / "sim", tmp_path / "cache"
    ds = {"root": str(root), "sim": {"images": 40, "size": 16, "seed": 0}, "image_size": 16,
          "val_fraction": 0.25, "split_seed": 0, "view": "all", "missing": "error",
          "cache_dir": str(cache)}
    prepare_data(ds, progress=False)
    assert not (root / ".mlbench_cache").exists()
    assert any(cache.iterdir())
    splits = Datasets.open(ds)
    assert sum(len(s) for s in splits.values()) == 40
    assert splits["train"][0][0].shape[-1] == 16


def test_unwritable_cache_is_one_error_naming_cache_dir(tmp_path, monkeypatch):
    import mlbench.data

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mlbench.data, "prepare_cache", refuse)
    ds = {"root": str(tmp_path / "sim"), "sim": {"images": 20, "size": 16, "seed": 0},
          "image_size": 16}
    with pytest.raises(PermissionError, match=r"sim \(dataset.root\).*--set dataset.cache_dir="):
        prepare_data(ds, progress=False)
    ds["cache_dir"] = str(tmp_path / "ro")
    with pytest.raises(PermissionError, match=r"in dataset.cache_dir: Permission denied"):
        prepare_data(ds, progress=False)
