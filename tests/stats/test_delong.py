"""DeLong tests: identity, the O(mn) definition, and agreement with the bootstrap."""

import numpy as np
import pytest
from scipy.stats import norm

from mlbench import metrics


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


def test_identical_predictions_give_zero_diff_and_p_one():
    rng = np.random.default_rng(0)
    t, a, _ = _correlated_pair(rng, 100, 3)
    for res in (metrics.delong_test(t[:, 0], a[:, 0], a[:, 0]), metrics.delong_mean_test(t, a, a)):
        assert res.diff == 0 and res.se == 0 and res.z == 0 and res.p_value == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_class_matches_omn_definition(seed):
    rng = np.random.default_rng(seed)
    t, a, b = _correlated_pair(rng, 80)
    res = metrics.delong_test(t[:, 0], a[:, 0], b[:, 0])
    auc_a, auc_b, var = _delong_reference(t[:, 0], a[:, 0], b[:, 0])
    assert res.auc_a == pytest.approx(auc_a) and res.auc_b == pytest.approx(auc_b)
    assert res.se == pytest.approx(np.sqrt(var), rel=1e-10)
    assert res.p_value == pytest.approx(2 * norm.sf(abs(auc_a - auc_b) / np.sqrt(var)))


def test_mean_test_with_one_class_equals_single_class_test():
    rng = np.random.default_rng(3)
    t, a, b = _correlated_pair(rng, 120, 2)
    t[:, 1] = 0  # skipped -> only class 0 remains
    one = metrics.delong_test(t[:, 0], a[:, 0], b[:, 0])
    mean = metrics.delong_mean_test(t, a, b)
    assert mean.classes == [0] and mean.skipped == [1]
    assert mean.se == pytest.approx(one.se, rel=1e-12) and mean.diff == pytest.approx(one.diff)


def _bootstrap_diff_se(t, a, b, n_boot, seed):
    rng = np.random.default_rng(seed)
    diffs = []
    tb = t.astype(bool)
    for _ in range(n_boot):
        idx = rng.integers(0, len(t), len(t))
        da = metrics._fast_auc(tb[idx], a[idx])
        db = metrics._fast_auc(tb[idx], b[idx])
        diffs.append(np.nanmean(da - db))
    return np.std(diffs, ddof=1)


def test_single_class_se_agrees_with_bootstrap():
    rng = np.random.default_rng(4)
    t, a, b = _correlated_pair(rng, 400)
    res = metrics.delong_test(t[:, 0], a[:, 0], b[:, 0])
    boot = _bootstrap_diff_se(t, a, b, 1500, 0)
    assert res.se == pytest.approx(boot, rel=0.15)


def test_mean_se_agrees_with_bootstrap_and_counts_cross_class_covariance():
    rng = np.random.default_rng(5)
    n, c = 400, 5
    t, a, b = _correlated_pair(rng, n, c)
    # make the class columns strongly correlated so the cross-class terms matter
    t = np.repeat(t[:, :1], c, axis=1)
    t[:, 1:] ^= (rng.random((n, c - 1)) < 0.05).astype(int)
    common = rng.normal(0, 1, (n, 1))
    a = t + common + rng.normal(0, 0.6, (n, c))
    b = t + rng.normal(0, 1.2, (n, c))
    res = metrics.delong_mean_test(t, a, b)
    boot = _bootstrap_diff_se(t, a, b, 1500, 1)
    assert res.se == pytest.approx(boot, rel=0.15)
    # an independence assumption would give sqrt(sum var_c)/C, clearly smaller here
    per_class = [metrics.delong_test(t[:, k], a[:, k], b[:, k]).se for k in range(c)]
    naive = np.sqrt(np.sum(np.square(per_class))) / c
    assert res.se > 1.3 * naive
    assert res.diff == pytest.approx(np.mean(metrics.per_class_auc(t, a) - metrics.per_class_auc(t, b)))


def test_delong_single_class_all_one_label_is_nan():
    res = metrics.delong_test(np.ones(10), np.arange(10.0), np.arange(10.0))
    assert np.isnan(res.diff) and res.skipped == [0]
