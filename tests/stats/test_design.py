"""`plan`'s numbers (issue 25 item 1): the SE of Δ is the score model's, and a design that the
plan says has 80% power at its MDE has 80% ± 5% in an independent simulation (the effect
drawn in the score model, other seeds), after Holm over the family. Seeded."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.leaderboard import calibrate as cal
from mlbench.stats import SparseRule
from mlbench.stats import design as dz
from mlbench.stats import simulate as sim


@pytest.fixture(scope="module")
def split():
    s = cal.sim_test_structure(3000, 0)  # the quickstart's test split (labels, patients)
    classes, _ = SparseRule().check(s.targets, s.groups)
    return sim.Split.of(s.targets[:, classes], s.groups)


def test_se_is_the_spread_of_the_estimate(split):
    model = sim.ScoreModel()
    pm = sim.patient_model(split, model)
    d = dz.draw(split, model, 3, 4, 0.01, 1500, np.random.default_rng(0), pm=pm)
    se = dz.true_se(pm, 0.01, 4)
    assert d.est[:, -1].std() == pytest.approx(se, rel=0.06)
    assert abs(d.est.mean()) < 3 * se / np.sqrt(d.est.size)


def test_holm_rejects_last():
    p = np.array([[0.001, 0.2, 0.004], [0.3, 0.01, 0.02], [0.5, 0.5, 0.011]])
    # m = 4: thresholds 0.0125, 0.0167, 0.025 ...
    assert list(dz.holm_rejects_last(p, 4)) == [True, False, True]
    assert list(dz.holm_rejects_last(p, 5)) == [True, False, False]


@pytest.mark.slow
@pytest.mark.parametrize("losses, seeds, m", [(4, 5, 3), (3, 4, 2)])
def test_plan_power_is_what_simulation_gives(split, losses, seeds, m):
    model = sim.ScoreModel()
    pm = sim.patient_model(split, model)
    d = dz.draw(split, model, losses, seeds, 0.01, 800, np.random.default_rng(0), pm=pm)
    effect = dz.mde(d, m)
    assert dz.power(d, effect, m) == pytest.approx(0.8, abs=0.01)
    got = dz.check_power(split, model, losses, seeds, 0.01, effect, m, 800, seed=1)
    assert abs(got - 0.8) <= 0.05, (effect, got)
    # Holm over more comparisons needs a larger effect
    assert dz.mde(d, 10 * m) > effect
