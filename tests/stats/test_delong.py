"""DeLong influence values: the O(mn) definition, identity, clustering, agreement with the bootstrap."""

import numpy as np
import pytest

from mlbench import stats
from mlbench.stats import metrics

ANY = stats.SparseRule(1, 1)  # every class with both labels


def _delong_reference(t, a, b):
    """O(mn) textbook DeLong (DeLong et al. 1988) for one class: (auc_a, auc_b, var of diff)."""
    t = t.astype(bool)

    def comps(s):
        x, y = s[t][:, None], s[~t][None, :]
        psi = (x > y) + 0.5 * (x == y)
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    auc_a, v10a, v01a = comps(a)
    auc_b, v10b, v01b = comps(b)
    var = np.var(v10a - v10b, ddof=1) / t.sum() + np.var(v01a - v01b, ddof=1) / (~t).sum()
    return auc_a, auc_b, var


def _correlated_pair(rng, n, c=1, noise_b=1.3):
    t = (rng.random((n, c)) < 0.3).astype(int)
    shared = rng.normal(0, 1, (n, c))
    a = t * 1.0 + shared + rng.normal(0, 0.5, (n, c))
    b = t * 1.0 + shared + rng.normal(0, noise_b, (n, c))
    return t, np.round(a, 1), np.round(b, 1)  # rounding makes ties


def test_identical_predictions_give_zero_delta_and_p_one():
    rng = np.random.default_rng(0)
    t, a, _ = _correlated_pair(rng, 100, 3)
    two = np.stack([a, a + 0.01])  # two seeds, each the same for both losses
    res = stats.paired_comparison(t, np.arange(100), two, two, rule=ANY)
    assert res.delta == 0 and res.se == 0 and res.p_value == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_image_per_patient_one_seed_is_exactly_delong(seed):
    rng = np.random.default_rng(seed)
    t, a, b = _correlated_pair(rng, 80)
    res = stats.paired_comparison(t, np.arange(80), a, b, rule=ANY)
    auc_a, auc_b, var = _delong_reference(t[:, 0], a[:, 0], b[:, 0])
    assert res.delta == pytest.approx(auc_a - auc_b, abs=1e-12)
    assert res.var_test == pytest.approx(var, rel=1e-10)
    # one seed: the DeLong term is there, but no seed term, so no test (issue 30)
    assert np.isnan(res.var_seed) and np.isnan(res.p_value) and "1 seed" in res.seed_term


def test_influence_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    t, a, _ = _correlated_pair(rng, 200, 4)
    auc, phi = stats.influence(t.astype(bool), a)
    np.testing.assert_allclose(auc, metrics.per_class_auc(t, a), atol=1e-12)
    assert phi.shape == (200, 4) and np.allclose(phi.sum(axis=0), 0, atol=1e-12)


def test_patient_clustering_widens_the_test_term_when_patients_repeat():
    rng = np.random.default_rng(4)
    t, a, b = _correlated_pair(rng, 60, 2)
    rep = lambda x: np.repeat(x, 8, axis=0) + (0 if x is t else rng.normal(0, 0.01, (480, 2)))
    tt, aa, bb = np.repeat(t, 8, axis=0), rep(a), rep(b)
    patients = np.repeat(np.arange(60), 8)
    image_level = stats.paired_comparison(tt, np.arange(480), aa, bb, rule=ANY)
    clustered = stats.paired_comparison(tt, patients, aa, bb, rule=ANY)
    assert clustered.var_test > 4 * image_level.var_test  # 8 copies: about sqrt(8) wider
    assert clustered.delta == image_level.delta


def _bootstrap_diff_se(t, a, b, n_boot, seed):
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(t), np.full(len(t), 1 / len(t)), size=n_boot).astype(float)
    tb = t.astype(bool)
    d = stats.WeightedAUC(tb, a)(w) - stats.WeightedAUC(tb, b)(w)
    return np.std(d.mean(axis=1), ddof=1)


def test_mean_se_agrees_with_bootstrap_and_counts_cross_class_covariance():
    rng = np.random.default_rng(5)
    n, c = 400, 5
    t, _, _ = _correlated_pair(rng, n, c)
    t = np.repeat(t[:, :1], c, axis=1)
    t[:, 1:] ^= (rng.random((n, c - 1)) < 0.05).astype(int)
    common = rng.normal(0, 1, (n, 1))
    a = t + common + rng.normal(0, 0.6, (n, c))
    b = t + rng.normal(0, 1.2, (n, c))
    res = stats.paired_comparison(t, np.arange(n), a, b, rule=ANY)
    boot = _bootstrap_diff_se(t, a, b, 1500, 1)
    assert np.sqrt(res.var_test) == pytest.approx(boot, rel=0.15)
    per_class = [np.sqrt(stats.paired_comparison(t[:, [k]], np.arange(n), a[:, [k]], b[:, [k]],
                                                 rule=ANY).var_test) for k in range(c)]
    assert np.sqrt(res.var_test) > 1.3 * np.sqrt(np.sum(np.square(per_class))) / c  # not independent
    assert res.delta == pytest.approx(np.mean(metrics.per_class_auc(t, a) - metrics.per_class_auc(t, b)))


def test_single_valued_class_is_left_out_as_not_estimable():
    t = np.ones((10, 1))
    res = stats.paired_comparison(t, np.arange(10), np.arange(10.0)[:, None], np.arange(10.0)[:, None])
    assert np.isnan(res.delta) and res.classes == [] and "not estimable" in res.left_out[0]


def test_counting_influence_equals_sorting_on_integer_scores():
    rng = np.random.default_rng(6)
    t = rng.random((5, 300)) < 0.2
    levels = rng.integers(0, 40, (5, 300))  # many ties
    auc, phi = stats.influence_levels(t, levels, 40)
    auc2, phi2 = stats.influence_rows(t, levels)
    np.testing.assert_allclose(auc, auc2, atol=1e-14)
    np.testing.assert_allclose(phi, phi2, atol=1e-14)
