"""Selection reads validation AUCs only: planted results.db files where validation and test
disagree (no training)."""

from __future__ import annotations

import math

import pytest

from mlbench.db import ResultsDB
from mlbench.leaderboard.tuned import SelectedRuns, settings_frame
from mlbench.suite import load_suite, selected, store_plan

from .conftest import plant, tuned_suite

# Setting order of both cells: lr 1e-3 first, then 3e-3 (bce); the composite's four.
VAL = {1e-3: 0.90, 3e-3: 0.60}  # validation prefers lr 1e-3 ...
TEST = {1e-3: 0.2, 3e-3: 3.0}  # ... test strongly prefers 3e-3


def _suite(tmp_path, **kw):
    tune = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1]}}}
    tune.update(kw)
    return load_suite(tuned_suite(tmp_path / "out", tune=tune), train_keys=False)


def _val(run):
    return VAL[run.config["train"]["lr"]]


def _test(run):
    return TEST[run.config["train"]["lr"]]


def _planted(tmp_path, second_stage: bool = False):
    """A tuned suite whose stage 1 (and stage 2) results are planted in its results.db."""
    suite = _suite(tmp_path)
    with ResultsDB(suite.output) as db:
        store_plan(db, suite.plan)
        plant(db, suite.plan.stage_one(), _val, _test)
        if second_stage:
            plant(db, suite.plan.stage_two(selected(db)), _val, _test)
    return suite


def test_selection_picks_best_validation_never_test(tmp_path):
    suite = _planted(tmp_path)
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
        plant(db, second, _val, _test)
        view = SelectedRuns(db)
        rows = view.runs("finished")
        assert len(rows) == 2 * 3  # the chosen setting, every seed, per loss
        assert {r["loss"] for r in rows} == {"bce", "bce+{alpha}*msml"}
        assert {r["config"]["train"]["lr"] for r in rows} == {"(tuned)"}
        assert {r["id"] for r in rows} == {rid for s in sel.values()
                                           for rid in s.chosen_runs.values()}
    # a value removed from the suite: its runs stay in results.db but leave the leaderboard
    smaller = load_suite(tuned_suite(tmp_path / "out", tune={"train": {"lr": [1e-3]}, "loss": {
        "bce+{alpha}*msml": {"alpha": [0.1]}}}), train_keys=False)
    with ResultsDB(suite.output) as db:
        store_plan(db, smaller.plan)
        rows = SelectedRuns(db).runs("finished")
        assert {r["config"]["train"]["lr"] for r in rows} == {"(tuned)"} and len(rows) == 6


def test_leaderboard_rows_come_from_the_chosen_setting(tmp_path):
    from mlbench.leaderboard.analysis import build
    from mlbench.leaderboard.tuned import annotate

    suite = _planted(tmp_path, second_stage=True)
    with ResultsDB(suite.output, readonly=True) as db:
        view = SelectedRuns(db)
        df = annotate(build(view, reference="bce"), view.selections)
        everything = settings_frame(db)
    assert list(df["loss"]) and set(df["loss"]) == {"bce", "bce+{alpha}*msml"}
    assert "setup" not in df.columns  # one block: the tuned lr is masked
    assert set(df["seeds"]) == {3}
    assert set(df["setting"]) == {"lr=0.001", "lr=0.001, alpha=0.1"}
    assert set(df["budget"]) == {"2"}
    assert set(df["val_auc"]) == {0.90}
    chosen = everything[everything["chosen"]]
    for row in df.itertuples():  # the row's test AUC is the chosen setting's, not the best
        ours = chosen[chosen["loss"] == row.loss]["test_auc"].iloc[0]
        others = everything[(everything["loss"] == row.loss) & ~everything["chosen"]]
        assert others["test_auc"].iloc[0] > ours
        assert row.mean_auc < 0.75


def test_pending_failed_and_ties(tmp_path):
    suite = _suite(tmp_path)
    plan = suite.plan
    bce = next(c for c in plan.cells if c.loss == "bce")
    first, second = (s.runs[0] for s in bce.settings)
    with ResultsDB(suite.output) as db:
        store_plan(db, plan)
        db.add_runs(plan.stage_one())
        assert all(s.chosen is None for s in selected(db).values())  # nothing done yet
        plant(db, [second], _val, _test)
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
    suite = load_suite(tuned_suite(tmp_path / "tie", tune={"train": {"lr": [1e-3, 3e-3]}},
                                   losses=("bce",)), train_keys=False)
    with ResultsDB(suite.output) as db:
        store_plan(db, suite.plan)
        plant(db, suite.plan.stage_one(), lambda r: 0.7, _test)
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
        plant(db, plan.stage_one(), val, _test)
        for s in selected(db).values():
            assert s.chosen_values["train.lr"] == 3e-3
            assert s.val_auc == pytest.approx([(0.9 + 0.5 + 0.5) / 3, 0.7])


def test_selection_is_stored(tmp_path):
    from mlbench.suite import META_KEY, store_selection

    suite = _planted(tmp_path)
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
