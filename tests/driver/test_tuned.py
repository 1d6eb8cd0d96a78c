"""Two-stage tuning end to end on CXR14-sim (tiny runs): run counts, selection stored,
a rerun after adding a value trains only the new runs."""

from __future__ import annotations

import pytest

from mlbench.db import ResultsDB
from mlbench.driver import run_tuned
from mlbench.suite import META_KEY, load_suite
from tests.helpers import TUNE, TUNED, tiny_suite

pytestmark = pytest.mark.slow


def _finished(out) -> dict:
    with ResultsDB(out, readonly=True) as db:
        return {r["id"]: r["finished"] for r in db.runs("finished")}


def test_two_stage_counts_and_rerun_trains_only_new_runs(tmp_path, sim_root):
    out = tmp_path / "out"
    tune = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}}}
    suite = load_suite(tiny_suite(sim_root, out, TUNED, tune=tune), env={})
    plan = suite.plan
    budget, seeds, cells = 2, 3, 2
    summary = run_tuned(suite, workers=1, progress=False)
    assert summary["stage1"] == cells * budget
    assert summary["stage2"] == cells * (seeds - 1)
    assert summary["finished"] == cells * (budget + seeds - 1) == plan.total_runs()
    first = _finished(out)
    assert len(first) == cells * (budget + seeds - 1)  # nothing else was trained
    with ResultsDB(out, readonly=True) as db:
        stored = db.get_meta(META_KEY)["cells"]
    for cell in stored.values():
        sel = cell["selection"]
        assert sel["chosen"] is not None and len(sel["val_auc"]) == budget
        chosen = next(s for s in cell["settings"] if s["index"] == sel["chosen"])
        assert set(chosen["runs"]) == {"0", "1", "2"}
        assert all(rid in first for rid in chosen["runs"].values())
    picked = {tuple(c["loss"] for c in [cell]): cell["selection"]["chosen"]
              for cell in stored.values()}

    # add a learning rate: only the new settings (and, where one wins, its later seeds) train
    tune["train"]["lr"].append(1e-2)
    tune["budget_per_loss"] = {"bce+{alpha}*msml": 3}
    suite = load_suite(tiny_suite(sim_root, out, TUNED, tune=tune), env={})
    summary = run_tuned(suite, workers=1, progress=False)
    second = _finished(out)
    assert {k: second[k] for k in first} == first  # no run of the first pass retrained
    new = set(second) - set(first)
    with ResultsDB(out, readonly=True) as db:
        stored = db.get_meta(META_KEY)["cells"]
    expected = 0
    for cell in stored.values():
        old_ids = {s["runs"]["0"] for s in cell["settings"]} & set(first)
        new_settings = [s for s in cell["settings"] if s["runs"]["0"] not in old_ids]
        expected += len(new_settings)
        if picked[(cell["loss"],)] != cell["selection"]["chosen"]:
            expected += seeds - 1  # a new setting won: its other seeds train
    assert 1 <= len(new) == expected
    assert summary["finished"] == suite.plan.total_runs()


def test_cli_tiny_suite_two_stage_and_leaderboard(tmp_path, sim_root, capsys):
    import yaml

    from mlbench.cli import main

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(tiny_suite(sim_root, tmp_path / "out", TUNED, tune=TUNE,
                                              seeds=[0, 1])))
    assert main(["run", str(path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "tune: stage 1 = 4 runs" in text and "stage 2: 2 runs" in text
    assert "6 finished, 0 failed of 6 runs" in text
    assert main(["leaderboard", str(tmp_path / "out"), "--no-per-class"]) == 0
    board = capsys.readouterr().out
    assert "setting" in board and "budget" in board and "bce+{alpha}*msml" in board
    assert main(["leaderboard", str(tmp_path / "out"), "--all-settings"]) == 0
    every = capsys.readouterr().out
    assert "every setting tried" in every and "val AUC (selection)" in every
    assert main(["report", str(tmp_path / "out"), "-o", str(tmp_path / "r.html")]) == 0
    assert "bce+{alpha}*msml" in (tmp_path / "r.html").read_text()


def test_augment_mapping_trains_and_is_tuned(tmp_path, sim_root):
    out = tmp_path / "out"
    suite = load_suite(tiny_suite(sim_root, out, TUNED, {"grid.loss": ["bce"]}, seeds=[0], tune={
        "train": {"augment": [False, {"hflip": 0.5, "rotate": 5, "resized_crop": [0.6, 1.0]}]}}),
        env={})
    summary = run_tuned(suite, workers=1, progress=False, say=False)
    assert summary["finished"] == 2 and summary["failed"] == 0
    with ResultsDB(out, readonly=True) as db:
        augments = sorted(str(r["config"]["train"]["augment"]) for r in db.runs())
    assert augments[0] == "False" and "'hflip': 0.5" in augments[1]
