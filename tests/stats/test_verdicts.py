"""Verdicts of primary contrasts (issue 25): better / worse / equivalent / non-inferior /
inconclusive from Δ, SE and df, Holm over the family, TOST at the same level."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from mlbench.stats.verdicts import family_verdicts, one_sided


def _p(delta, se, df):
    return 2 * st.t.sf(abs(delta) / se, df)


@pytest.mark.parametrize("delta, se, expect", [
    (0.02, 0.004, "better"),
    (-0.02, 0.004, "worse"),
    (0.0005, 0.001, "equivalent"),  # 90% CI about ±0.0024 inside ±0.005
    (0.003, 0.0015, "non-inferior"),  # lower bound above -0.005, upper above +0.005
    (0.0, 0.01, "inconclusive"),
])
def test_verdicts(delta, se, expect):
    df = 20.0
    v = family_verdicts([delta], [se], [df], [_p(delta, se, df)], margin=0.005)
    assert v["verdict"][0] == expect


def test_no_margin_gives_no_equivalence_and_one_seed_no_test():
    v = family_verdicts([0.0005, 0.01], [0.001, np.nan], [20.0, np.nan],
                        [_p(0.0005, 0.001, 20), np.nan], margin=None)
    assert list(v["verdict"]) == ["inconclusive", "no test"]
    assert np.isnan(v["p_equiv"]).all()


def test_tost_is_the_larger_one_sided_p_and_holm_over_the_family():
    ni, eq = one_sided([0.001], [0.002], [10.0], 0.005)
    lower = st.t.sf((0.001 + 0.005) / 0.002, 10)
    upper = st.t.sf((0.005 - 0.001) / 0.002, 10)
    assert ni[0] == pytest.approx(lower) and eq[0] == pytest.approx(max(lower, upper))
    # the same contrast alone is equivalent; in a family of 3 its Holm-adjusted TOST p is not
    delta, se = 0.0, 0.0024
    alone = family_verdicts([delta], [se], [30.0], [1.0], margin=0.005)
    three = family_verdicts([delta] * 3, [se] * 3, [30.0] * 3, [1.0] * 3, margin=0.005)
    assert alone["verdict"][0] == "equivalent" and alone["p_equiv"][0] < 0.05
    assert three["p_equiv"][0] == pytest.approx(min(1, 3 * alone["p_equiv"][0]))
    assert three["verdict"][0] == "inconclusive"


def test_tost_level_in_simulation():
    """TOST rejects a true Δ on the margin at most alpha of the time (seeded)."""
    rng = np.random.default_rng(0)
    n, se, df, m = 4000, 0.002, 8.0, 0.005
    est = m + se * rng.standard_t(df, n)
    _, eq = one_sided(est, np.full(n, se), np.full(n, df), m)
    assert 0.035 < (eq < 0.05).mean() < 0.065
