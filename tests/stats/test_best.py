"""P(best) and expected rank (issue 25 item 3): a distribution over the losses, and
calibrated in simulation (the predicted P(best) is the share of the truly best). Seeded."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.leaderboard import calibrate as cal
from mlbench.stats import SparseRule
from mlbench.stats import simulate as sim
from mlbench.stats.best import calibration, p_best


def test_p_best_is_a_distribution_and_ranks_add_up():
    cov = np.diag([1e-6] * 4)
    pb, rank = p_best([0.80, 0.80, 0.80, 0.83], [1e-5] * 4, [2.0] * 4, [3] * 4, cov)
    assert pb.sum() == pytest.approx(1.0) and rank.sum() == pytest.approx(10.0)
    assert pb[3] > 0.99 and rank[3] == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(pb[:3], 1 / 3 * (1 - pb[3]), atol=0.02)
    # a shared test-set error moves every loss alike and changes no ranking
    shared = np.full((4, 4), 1e-4)
    pb2, _ = p_best([0.80, 0.801, 0.80, 0.80], [1e-8] * 4, [50.0] * 4, [3] * 4, shared)
    assert pb2[1] > 0.99


def test_calibrated_in_simulation():
    s = cal.sim_test_structure(3000, 0)  # the quickstart's test split (labels, patients)
    classes, _ = SparseRule().check(s.targets, s.groups)
    split = sim.Split.of(s.targets[:, classes], s.groups)
    r = calibration(split, sim.ScoreModel(), 4, 3, 0.01, 0.01, 400, seed=0, draws=1000, bins=5)
    assert r["ece"] < 0.04, r
    for lo, hi, n, pred, obs in r["bins"]:
        if n >= 100:
            assert abs(pred - obs) < 0.08, (lo, hi, n, pred, obs)
