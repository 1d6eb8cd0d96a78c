"""Selection reads validation AUCs only: planted results.db files where validation and test
disagree (no training). The leaderboard's view of the chosen runs:
tests/leaderboard/test_tuned.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.leaderboard.tuned import SelectedRuns, settings_frame
from mlbench.suite import load_suite, selected, store_plan
from tests.helpers import FINDINGS, TUNED, fake_scores, fake_targets, plant, tiny_suite

# Setting order of both cells: lr 1e-3 first, then 3e-3 (bce); the composite's four.
VAL = {1e-3: 0.90, 3e-3: 0.60}  # validation prefers lr 1e-3 ...
TEST = {1e-3: 0.2, 3e-3: 3.0}  # ... test strongly prefers 3e-3


def _tuned(out, *layers, **changes) -> dict:
    return tiny_suite(None, out, TUNED, *layers, **changes)


def _suite(tmp_path, **kw):
    tune = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1]}}}
    tune.update(kw)
    return load_suite(_tuned(tmp_path / "out", tune=tune), train_keys=False)


def _plant(db, runs, val_of, test_signal_of, seed: int = 0) -> None:
    """Register ``runs`` and plant each with a validation AUC (``val_of(run)``) and test
    predictions whose signal is ``test_signal_of(run)`` (larger: higher test AUC)."""
    db.add_runs(runs)
    db.set_meta("findings", FINDINGS)
    db.set_meta("reference", "bce")
    db.set_meta("dataset", {"kind": "sim", "root": "x", "image_size": 16})
    targets = fake_targets(np.random.default_rng(seed), 400, both=20)
    for run in runs:
        rng = np.random.default_rng([seed, run.seed, int(run.id[:6], 16)])
        val = val_of(run)
        plant(db, run.id, targets, fake_scores(targets, test_signal_of(run), rng), seed=run.seed,
              records=[("val_mean_auc", "", val, None, None)],
              epochs=[{"epoch": 0, "train_loss": 1.0, "val_mean_auc": val}])


def _val(run):
    return VAL[run.config["train"]["lr"]]


def _test(run):
    return TEST[run.config["train"]["lr"]]


def planted(tmp_path, second_stage: bool = False, **tune):
    """A tuned suite whose stage 1 (and stage 2) results are planted in its results.db
    (``tune``: more keys of its ``tune`` section)."""
    suite = _suite(tmp_path, **tune)
    with ResultsDB(suite.output) as db:
        store_plan(db, suite.plan)
        _plant(db, suite.plan.stage_one(), _val, _test)
        if second_stage:
            _plant(db, suite.plan.stage_two(selected(db)), _val, _test)
    return suite


def test_selection_picks_best_validation_never_test(tmp_path):
    suite = planted(tmp_path)
    plan = suite.plan
    with ResultsDB(suite.output) as db:
        sel = selected(db)
        assert set(sel) == {c.key for c in plan.cells}
        for s in sel.values():
            assert s.chosen_values["train.lr"] == 1e-3  # best validation, worst test
            assert s.val_auc == [0.90, 0.60] and s.status == ["finished", "finished"]
        # the test AUCs really disagree: the other setting is better on test
        frame = settings_frame(db, sel)
        by = {(r.loss, r.setting): r for r in frame.itertuples()}
        assert by[("bce", "lr=0.003")].test_auc > by[("bce", "lr=0.001")].test_auc + 0.1
        assert by[("bce", "lr=0.001")].chosen and not by[("bce", "lr=0.003")].chosen
        # stage 2 runs the chosen setting on seeds 1 and 2
        second = plan.stage_two(sel)
        assert {r.config["train"]["lr"] for r in second} == {1e-3}
        assert len(second) == 2 * 2
        _plant(db, second, _val, _test)
        view = SelectedRuns(db)
        rows = view.runs("finished")
        assert len(rows) == 2 * 3  # the chosen setting, every seed, per loss
        assert {r["loss"] for r in rows} == {"bce", "bce+{alpha}*msml"}
        assert {r["config"]["train"]["lr"] for r in rows} == {"(tuned)"}
        assert {r["id"] for r in rows} == {rid for s in sel.values()
                                           for rid in s.chosen_runs.values()}
    # a value removed from the suite: its runs stay in results.db but leave the leaderboard
    smaller = load_suite(_tuned(tmp_path / "out", tune={"train": {"lr": [1e-3]}, "loss": {
        "bce+{alpha}*msml": {"alpha": [0.1]}}}), train_keys=False)
    with ResultsDB(suite.output) as db:
        store_plan(db, smaller.plan)
        rows = SelectedRuns(db).runs("finished")
        assert {r["config"]["train"]["lr"] for r in rows} == {"(tuned)"} and len(rows) == 6



def test_pending_failed_and_ties(tmp_path):
    suite = _suite(tmp_path)
    plan = suite.plan
    bce = next(c for c in plan.cells if c.loss == "bce")
    first, second = (s.runs[0] for s in bce.settings)
    with ResultsDB(suite.output) as db:
        store_plan(db, plan)
        db.add_runs(plan.stage_one())
        assert all(s.chosen is None for s in selected(db).values())  # nothing done yet
        _plant(db, [second], _val, _test)
        assert selected(db)[bce.key].chosen is None  # the first setting still pending
        claimed = db.claim([first.id])
        db.fail(claimed["id"], "non-finite training loss at step 1", 1)
        s = selected(db)[bce.key]
        assert s.status == ["failed", "finished"] and s.chosen == bce.settings[1].index
        assert math.isnan(s.val_auc[0])
        assert plan.stage_two(selected(db)) and all(
            r.config["train"]["lr"] == 3e-3 for r in plan.stage_two(selected(db))
            if r.loss == "bce")
    # ties go to the earlier setting
    suite = load_suite(_tuned(tmp_path / "tie", {"grid.loss": ["bce"]},
                              tune={"train": {"lr": [1e-3, 3e-3]}}), train_keys=False)
    with ResultsDB(suite.output) as db:
        store_plan(db, suite.plan)
        _plant(db, suite.plan.stage_one(), lambda r: 0.7, _test)
        (s,) = selected(db).values()
        assert s.chosen == 0


def test_one_stage_selects_on_the_mean_over_seeds(tmp_path):
    suite = _suite(tmp_path, stages=1)
    plan = suite.plan
    assert len(plan.stage_one()) == 2 * 2 * 3 and plan.stage_two({}) == []

    def val(run):  # 1e-3 wins on seed 0 only; 3e-3 has the higher mean
        lr = run.config["train"]["lr"]
        return {(1e-3, 0): 0.9, (1e-3, 1): 0.5, (1e-3, 2): 0.5}.get((lr, run.seed), 0.7)

    with ResultsDB(suite.output) as db:
        store_plan(db, plan)
        _plant(db, plan.stage_one(), val, _test)
        for s in selected(db).values():
            assert s.chosen_values["train.lr"] == 3e-3
            assert s.val_auc == pytest.approx([(0.9 + 0.5 + 0.5) / 3, 0.7])


def test_selection_is_stored(tmp_path):
    from mlbench.suite import META_KEY, store_selection

    suite = planted(tmp_path)
    with ResultsDB(suite.output) as db:
        store_selection(db, selected(db))
    with ResultsDB(suite.output, readonly=True) as db:
        cells = db.get_meta(META_KEY)["cells"]
    assert len(cells) == 2
    for cell in cells.values():
        assert cell["selection"]["chosen"] == 0
        assert cell["selection"]["val_auc"] == [0.9, 0.6]
        assert cell["selection"]["selection_seeds"] == [0]
        assert cell["budget"] == 2 and len(cell["settings"]) == 2
