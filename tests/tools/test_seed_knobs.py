"""tools.seed_knobs (issue 30): the knobs of the leaderboard's seed term and test
scored on the draws `mlbench calibrate` sees, so a candidate reproduces calibrate's figures for
the rule it stands for exactly."""

from __future__ import annotations

import pytest

from mlbench.leaderboard import calibrate as cal
from tools import seed_knobs

GRID = dict(losses=(3,), seeds=(3,), unstable=(3,), rho=(0.0,))


@pytest.mark.slow
def test_candidates_reproduce_calibrate(tmp_path):
    s = cal.sim_test_structure(3000, 0)
    seed_knobs.draw(s, tmp_path, 40, None, seed=4, grid=GRID)
    rows = seed_knobs.score([tmp_path], {"moderated-bf": {}, "two": dict(two_sided=True),
                                         "lb": dict(own=True, quantile=0.25, floor=0.6)})
    assert [r["candidate"] for r in rows] == ["moderated-bf", "two", "lb"]
    names = ("moderated-bf", "symmetric", "leaderboard")
    ref = cal.simulate(s, cal.Scenario(3, 3, None, (1.0, 3.0)), replicates=40, seed=4,
                       rules=list(names))
    for got, name in zip(rows, names, strict=True):
        for key in ("type1", "type1_unstable", "fwer", "power", "coverage", "coverage_unstable"):
            assert got[key] == pytest.approx(ref[name][key]), (name, key)
    summ = seed_knobs.summary(rows)
    assert summ[0]["candidate"] == "moderated-bf" and summ[0]["type1_max"] == rows[0]["type1"]


def test_unknown_knob_is_refused():
    with pytest.raises(ValueError, match="knobs among"):
        seed_knobs.make_rule(quantiles=((1.5, 0.05),))
    with pytest.raises(ValueError, match="own=True uses no moderation"):
        seed_knobs.make_rule(own=True, alpha=3.0)
    assert list(seed_knobs.CANDIDATES())[0] == "moderated-bf"
    assert list(seed_knobs.fourth_round())[0] == "moderated-bf"


def test_score_refuses_an_unknown_rule(capsys):
    assert seed_knobs.main(["score", "--cache", "/nonexistent", "--rules", "leaderboard,nope"]) == 2
    assert "nope" in capsys.readouterr().err
