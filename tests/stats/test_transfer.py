"""Kendall's tau of a loss ranking between two test sets: the statistic against scipy and
the plain metrics, the joint patient resampling, and the verdicts by simulation."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from mlbench import stats
from mlbench.stats import ScoredTestSet, kendall_tau_b, ranking_agreement
from tools import ranking_transfer


def test_vectorised_tau_b_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (50, 5)).astype(float)
    y = rng.integers(0, 3, (50, 5)).astype(float)
    ours = kendall_tau_b(x, y)
    for i in range(50):
        ref = kendalltau(x[i], y[i]).statistic
        assert (np.isnan(ours[i]) and np.isnan(ref)) or ours[i] == pytest.approx(ref, abs=1e-12)


def test_point_tau_is_that_of_the_seed_averaged_mean_aucs_with_masks():
    rng = np.random.default_rng(1)
    a, b, _ = ranking_transfer.simulate("swap", rng, patients=60)
    known = rng.random(b.targets.shape) < 0.7
    known[:2] = True
    b = ScoredTestSet(b.scores, np.where(known, b.targets, np.nan), b.groups, mask=known)
    res = ranking_agreement(a, b, n_boot=20)
    mean_a = [np.mean([stats.mean_auc(a.targets, s) for s in a.scores[i]]) for i in range(4)]
    mean_b = [np.mean([stats.mean_auc(b.targets, s, mask=known) for s in b.scores[i]])
              for i in range(4)]
    np.testing.assert_allclose(res.means_a, mean_a, atol=1e-12)
    np.testing.assert_allclose(res.means_b, mean_b, atol=1e-12)
    assert res.tau == pytest.approx(kendalltau(mean_a, mean_b).statistic)
    assert res.ci_lo <= res.ci_hi and res.n_losses == 4 and res.n_seeds == 3
    assert "Kendall tau" in res.line()


def test_a_shared_patient_is_drawn_once_for_both_test_sets():
    # B is A itself (same images, patients, labels and scores): every replicate draws the same
    # weights for both, so every replicate orders the losses identically (tau = 1 throughout);
    # with the patients taken as different people the replicates disagree.
    rng = np.random.default_rng(2)
    a, _, _ = ranking_transfer.simulate("null", rng, patients=40)
    same = ranking_agreement(a, ScoredTestSet(a.scores, a.targets, a.groups), n_boot=100)
    assert same.tau == 1 and same.ci_lo == same.ci_hi == 1 and same.verdict == "transfers"
    apart = ranking_agreement(a, ScoredTestSet(a.scores, a.targets, a.groups + 10_000),
                              n_boot=100)
    assert apart.ci_lo < 1


def test_linear_replicates_follow_the_exact_ones():
    from mlbench.stats import group_index
    from mlbench.stats.transfer import METHODS

    rng = np.random.default_rng(4)
    a, b, _ = ranking_transfer.simulate("swap", rng, effect=0.04, patients=200)
    gi, ng = group_index(a.groups.astype(str))
    draws = rng.multinomial(ng, np.full(ng, 1 / ng), size=60).astype(float)
    ex, li = METHODS["exact"](a, gi, ng), METHODS["linear"](a, gi, ng)
    np.testing.assert_allclose(ex.point(), li.point(), atol=1e-12)  # the point is exact
    e, l_ = ex.under(draws), li.under(draws)
    # first-order error (order 1/N) well below the replicates' spread
    assert np.abs(e - l_).mean() < 0.15 * e.std(axis=2).mean()
    r_exact = ranking_agreement(a, b, n_boot=100, method="exact")
    r_lin = ranking_agreement(a, b, n_boot=100, method="linear")
    assert r_exact.tau == r_lin.tau and abs(r_exact.p_positive - r_lin.p_positive) < 0.1
    assert ranking_agreement(a, b, n_boot=10).replicates == "exact"  # 600 x 3 cells: small
    big = ranking_transfer.simulate("swap", rng, patients=2800)  # 8,400 x 3 cells
    assert ranking_agreement(big[0], big[1], n_boot=10).replicates == "linear"


def test_bad_inputs():
    rng = np.random.default_rng(3)
    a, b, _ = ranking_transfer.simulate("same", rng, patients=20)
    with pytest.raises(ValueError, match="same losses x seeds"):
        ranking_agreement(a, ScoredTestSet(b.scores[:, :2], b.targets, b.groups))
    with pytest.raises(ValueError, match="at least 2 losses"):
        ranking_agreement(ScoredTestSet(a.scores[:1], a.targets, a.groups),
                          ScoredTestSet(b.scores[:1], b.targets, b.groups))


@pytest.mark.slow
def test_verdicts_by_simulation():
    # 30 setups each: no verdict when the losses are equal, the right one when they differ
    null = ranking_transfer.study("null", 30, 100)
    assert null["transfers"] + null["reverses"] <= 2 / 30
    shared = ranking_transfer.study("shared-null", 30, 100)
    assert shared["transfers"] + shared["reverses"] <= 2 / 30
    same = ranking_transfer.study("same", 30, 100)
    assert same["transfers"] >= 27 / 30 and same["reverses"] == 0
    rev = ranking_transfer.study("reversed", 30, 100)
    assert rev["reverses"] >= 27 / 30 and rev["transfers"] == 0
    unrelated = ranking_transfer.study("unrelated", 30, 100)
    assert unrelated["transfers"] + unrelated["reverses"] <= 2 / 30
