"""tools.seed_knobs (issue 30): the knobs of the first issue-30 rule (``calibrate``'s
"guarded": moderated seed term, df at its upper bound) scored on the draws that rule sees, so
its candidate reproduces `mlbench calibrate`'s figures for it exactly. (The leaderboard's
rule is now each comparison's own seed term with Behrens-Fisher: no knobs.)"""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.leaderboard import calibrate as cal
from mlbench.stats import seedvar
from tools import seed_knobs

GRID = dict(losses=(3,), seeds=(3,), unstable=(3,), rho=(0.0,))


@pytest.mark.slow
def test_guarded_candidate_reproduces_calibrate(tmp_path):
    s = cal.sim_test_structure(3000, 0)
    seed_knobs.draw(s, tmp_path, 40, None, seed=4, grid=GRID)
    rows = seed_knobs.score([tmp_path], {"leaderboard": dict(quantiles=seedvar.DF_QUANTILES),
                                         "wide": dict(quantiles=((np.inf, 0.9),))})
    assert [r["candidate"] for r in rows] == ["leaderboard", "wide"]
    ref = cal.simulate(s, cal.Scenario(3, 3, None, (1.0, 3.0)), replicates=40, seed=4,
                       rules=["guarded"])["guarded"]
    got = rows[0]
    for key in ("type1", "type1_unstable", "fwer", "power", "coverage", "coverage_unstable"):
        assert got[key] == pytest.approx(ref[key]), key
    # a larger quantile gives a larger df: never fewer rejections
    assert rows[1]["type1"] >= got["type1"] and rows[1]["power"] >= got["power"]
    summ = seed_knobs.summary(rows)
    assert summ[0]["candidate"] == "leaderboard" and summ[0]["type1_max"] == got["type1"]


@pytest.mark.slow
def test_tail_rates_bound_the_quantiles():
    """The leaderboard's quantiles keep the 0.5% tail within 0.9% however much of the
    variance the seed term carries; a quantile well beyond them does not (1 seed df)."""
    for d, q in ((1, 0.05), (2, 0.15), (3, 0.2), (4, 0.3)):
        r = seed_knobs.tail_rates(d, q, draws=40_000)
        assert r["0.5%"] <= 0.009 and r["5%"] <= 0.06, (d, q, r)
    assert seed_knobs.tail_rates(1, 0.3, draws=40_000)["0.5%"] > 0.015
