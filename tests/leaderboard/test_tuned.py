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
