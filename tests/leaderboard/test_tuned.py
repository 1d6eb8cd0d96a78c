"""A tuned suite's leaderboard: each row is the chosen setting's (selected on validation),
not the setting best on test (results planted as in tests/suite/test_selection.py)."""

from __future__ import annotations

from mlbench.db import ResultsDB
from mlbench.leaderboard.tuned import SelectedRuns, settings_frame
from tests.suite.test_selection import planted


def test_leaderboard_rows_come_from_the_chosen_setting(tmp_path):
    from mlbench.leaderboard.analysis import build
    from mlbench.leaderboard.tuned import annotate

    suite = planted(tmp_path, second_stage=True)
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


def test_fresh_seeds_leave_the_selection_run_out(tmp_path):
    """`tune.fresh_seeds: true`: the same runs, each tuned loss reported on seeds 1 and 2
    only (its seed-0 run won the selection), and the note says what that costs."""
    import pytest

    from mlbench.leaderboard import leaderboard
    from mlbench.suite import SuiteError, load_suite
    from tests.helpers import TUNED, tiny_suite

    plain = planted(tmp_path / "plain", second_stage=True)
    fresh = planted(tmp_path / "fresh", second_stage=True, fresh_seeds=True)
    assert [r.id for r in fresh.plan.every_run()] == [r.id for r in plain.plan.every_run()]
    assert "fresh_seeds" in fresh.plan.describe()
    with ResultsDB(fresh.output, readonly=True) as db:
        view = SelectedRuns(db)
        rows = view.runs("finished")
        assert {r["seed"] for r in rows} == {1, 2} and len(rows) == 2 * 2
        chosen = {rid for s in view.selections.values() for seed, rid in s.chosen_runs.items()
                  if seed != 0}
        assert {r["id"] for r in rows} == chosen
    with ResultsDB(plain.output, readonly=True) as db:
        assert {r["seed"] for r in SelectedRuns(db).runs("finished")} == {0, 1, 2}
    text = leaderboard(fresh.output, per_class=False)
    assert "fresh_seeds" in text and "2 of 3 seeds reported" in text
    with pytest.raises(SuiteError, match="tune.fresh_seeds"):
        load_suite(tiny_suite(None, tmp_path / "bad", TUNED, **{"seeds": [0, 1], "tune": {
            "train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1]}},
            "fresh_seeds": True}}), train_keys=False)
