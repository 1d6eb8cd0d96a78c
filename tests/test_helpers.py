"""tests/helpers.py itself: what a change to the tiny suite means, and that planted results
read back as stored."""

from __future__ import annotations

import numpy as np

from mlbench.db import ResultsDB
from mlbench.suite import load_suite
from tests.helpers import (
    BASE,
    EIGHT_RUNS,
    FINDINGS,
    fake_scores,
    fake_targets,
    plant,
    stored_results,
    tiny_suite,
)


def test_changes_dotted_nested_none_and_layers(tmp_path):
    base = tiny_suite(tmp_path / "sim", tmp_path / "out")
    assert base["dataset"]["root"] == str(tmp_path / "sim") and base["output"] == str(
        tmp_path / "out")
    assert {k: v for k, v in base.items() if k != "output"} == {
        **BASE, "dataset": {**BASE["dataset"], "root": str(tmp_path / "sim")}}
    assert "root" not in tiny_suite(None, tmp_path / "out")["dataset"]
    dotted = tiny_suite(None, "o", **{"train.epochs": 5})
    nested = tiny_suite(None, "o", train={"epochs": 5})
    assert dotted == nested and nested["train"]["lr"] == BASE["train"]["lr"]  # kept
    assert "sim" not in tiny_suite(None, "o", **{"dataset.sim": None})["dataset"]
    spec = tiny_suite(None, "o", tune={"loss": {"bce+0.1*msml": {"a": [1]}}})
    assert spec["tune"] == {"loss": {"bce+0.1*msml": {"a": [1]}}}  # a dot inside a key stays
    # layers first, then the keyword changes; nothing shared with the caller's mappings
    grid = tiny_suite(None, "o", EIGHT_RUNS, seeds=[3])
    assert grid["seeds"] == [3] and grid["grid"]["head"] == ["linear", "bilinear"]
    grid["grid"]["head"].append("x")
    assert EIGHT_RUNS["grid"]["head"] == ["linear", "bilinear"] and BASE["seeds"] == [0]
    assert len(load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS), env={},
                          train_keys=False).runs) == 8


def test_planted_results_read_back_as_stored(tmp_path):
    suite = load_suite(tiny_suite(None, tmp_path / "out"), env={}, train_keys=False)
    rng = np.random.default_rng(0)
    targets = fake_targets(rng, 50, both=2)
    assert (targets[:2] == 1).all() and (targets[2:4] == 0).all()
    scores = fake_scores(targets, 2.0, rng)
    assert scores.shape == targets.shape and ((scores > 0) & (scores < 1)).all()
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
        first = suite.runs[0].id
        plant(db, first, targets, scores, records=[("train_seconds", "", 1.5, None, None)],
              epochs=[{"epoch": 0, "train_loss": 0.5, "train_time": 3.0}], device="cpu")
        assert db.get_run(first)["device"] == "cpu"
    got = stored_results(suite.output)
    assert set(got) == {r.id for r in suite.runs}
    assert got[first]["status"] == "finished"
    assert got[first]["scores"] == scores.astype(np.float32).tobytes()  # stored as float32
    assert got[first]["epochs"] == [{"epoch": 0, "train_loss": 0.5}]  # timings left out
    names = {m[0] for m in got[first]["metrics"]}
    assert "mean_auc" in names and "train_seconds" not in names
    assert sum(m[0] == "auc" for m in got[first]["metrics"]) == len(FINDINGS)
    other = suite.runs[1].id
    assert got[other] == {"status": "pending", "metrics": [], "epochs": [], "scores": None}
