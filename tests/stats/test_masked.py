"""Masked labels (a test set's missing or ignored labels): every masked path against the
unmasked computation on the labelled subset (scikit-learn, DeLong, the bootstrap)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import (
    average_precision_score,
    label_ranking_average_precision_score,
    label_ranking_loss,
    roc_auc_score,
)

from mlbench import stats

ANY = stats.SparseRule(1, 1)


@st.composite
def masked_scores(draw):
    n = draw(st.integers(3, 40))
    c = draw(st.integers(1, 4))
    t = draw(arrays(np.int8, (n, c), elements=st.integers(0, 1))).astype(np.float64)
    known = draw(arrays(np.bool_, (n, c), elements=st.booleans()))
    s = draw(arrays(np.float64, (n, c), elements=st.sampled_from([0.0, 0.1, 0.5, 0.9, -3.0])))
    t[~known] = np.nan  # a masked-out target may be anything
    return t, s, known


@settings(max_examples=80, deadline=None)
@given(masked_scores())
def test_masked_auc_ap_equal_sklearn_on_the_labelled_rows(data):
    t, s, known = data
    out = stats.evaluate_scores(t, s, mask=known)
    for c in range(t.shape[1]):
        rows = known[:, c]
        tc, sc = t[rows, c], s[rows, c]
        if 0 < tc.sum() < len(tc):
            assert out["auc"][c] == pytest.approx(roc_auc_score(tc, sc), abs=1e-12)
            assert out["ap"][c] == pytest.approx(average_precision_score(tc, sc), abs=1e-12)
        else:
            assert np.isnan(out["auc"][c]) and c in out["skipped"]
            assert c in stats.skipped_classes(t, mask=known)


def test_full_mask_is_the_unmasked_computation():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (60, 3))
    s = t + rng.normal(0, 1, t.shape)
    full = np.ones(t.shape, bool)
    a, b = stats.evaluate_scores(t, s), stats.evaluate_scores(t, s, mask=full)
    np.testing.assert_array_equal(a["auc"], b["auc"])
    assert stats.label_ranking(t, s) == stats.label_ranking(t, s, mask=full)
    ci_a = stats.bootstrap_ci(t, s, n_boot=50, seed=1)
    ci_b = stats.bootstrap_ci(t, s, n_boot=50, seed=1, mask=full)
    np.testing.assert_array_equal(ci_a["auc_lo"], ci_b["auc_lo"])
    np.testing.assert_allclose(stats.influence(t.astype(bool), s)[1],
                               stats.influence(t.astype(bool), s, full)[1], atol=1e-15)


def test_nan_targets_without_mask_say_how_to_mask():
    t = np.array([[0.0], [1.0], [np.nan]])
    with pytest.raises(ValueError, match=r"mask=~np.isnan"):
        stats.per_class_auc(t, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="bool `mask`"):
        stats.per_class_auc(t, np.zeros((3, 1)), mask=np.ones((3, 1)))
    with pytest.raises(ValueError, match="shape"):
        stats.per_class_auc(t, np.zeros((3, 1)), mask=np.ones((3, 2), bool))


def _per_image_ranking(t, s, known):
    """Reference: each image ranked over its labelled findings, one sklearn call per image."""
    lrap, loss = [], []
    for i in range(len(t)):
        cols = known[i]
        ti, si = t[i, cols].astype(int)[None], s[i, cols][None]
        if 0 < ti.sum() < ti.size:
            lrap.append(label_ranking_average_precision_score(ti, si))
            loss.append(label_ranking_loss(ti, si))
    return np.mean(lrap), np.mean(loss), len(lrap)


def test_masked_label_ranking_equals_per_image_sklearn():
    rng = np.random.default_rng(3)
    n, c = 300, 5
    t = (rng.random((n, c)) < 0.35).astype(float)
    s = np.round(t + rng.normal(0, 1, t.shape), 1)  # ties
    known = rng.random((n, c)) < 0.7
    t[~known] = np.nan
    out = stats.label_ranking(t, s, mask=known)
    lrap, loss, used = _per_image_ranking(t, s, known)
    assert out["n_ranked"] == used
    assert out["lrap"] == pytest.approx(lrap, abs=1e-12)
    assert out["ranking_loss"] == pytest.approx(loss, abs=1e-12)
    # one pattern of labelled findings: scikit-learn on those columns
    cols = np.array([True, False, True, True, False])
    t2 = np.where(cols, np.nan_to_num(t), np.nan)
    one = stats.label_ranking(t2, s, mask=np.broadcast_to(cols, t.shape).copy())
    ref = stats.label_ranking(np.nan_to_num(t)[:, cols], s[:, cols])
    assert one == ref


def _patients_keep_a_label(rng, n_pat, per, c):
    """Labels, scores, mask and patients in which every patient keeps a labelled image in
    every class (then a masked patient bootstrap draws exactly what the subset's draws)."""
    g = np.repeat(np.arange(n_pat), per)
    n = len(g)
    t = (rng.random((n, c)) < 0.3).astype(float)
    s = t + rng.normal(0, 1.0, (n, c)) + rng.normal(0, 0.5, (n_pat, 1))[g]
    known = rng.random((n, c)) < 0.6
    known[::per] = True  # the first image of each patient is labelled
    t[~known] = np.nan
    return t, s, known, g


def test_masked_bootstrap_equals_the_subset_bootstrap_per_class():
    rng = np.random.default_rng(4)
    t, s, known, g = _patients_keep_a_label(rng, 40, 4, 3)
    masked = stats.bootstrap_ci(t, s, groups=g, mask=known, n_boot=300, seed=7)
    for c in range(3):
        rows = known[:, c]
        sub = stats.bootstrap_ci(t[rows, c], s[rows, c], groups=g[rows], n_boot=300, seed=7)
        assert masked["auc_lo"][c] == pytest.approx(sub["auc_lo"][0], abs=1e-12)
        assert masked["auc_hi"][c] == pytest.approx(sub["auc_hi"][0], abs=1e-12)


def test_masked_weighted_auc_equals_resampled_subset():
    rng = np.random.default_rng(5)
    t, s, known, _ = _patients_keep_a_label(rng, 30, 3, 2)
    idx = rng.integers(0, len(t), len(t))
    w = np.bincount(idx, minlength=len(t)).astype(float)[None]
    fast = stats.WeightedAUC(np.nan_to_num(t).astype(bool), s, known)(w)[0]
    for c in range(2):
        rows = idx[known[idx, c]]
        assert fast[c] == pytest.approx(roc_auc_score(t[rows, c], s[rows, c]), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_influence_equals_influence_of_the_subset(seed):
    rng = np.random.default_rng(seed)
    n, c = 200, 3
    t = rng.random((n, c)) < 0.3
    s = np.round(t + rng.normal(0, 1, (n, c)), 1)  # ties
    known = rng.random((n, c)) < 0.65
    auc, phi = stats.influence(t, s, known)
    for k in range(c):
        rows = known[:, k]
        a1, p1 = stats.influence(t[rows, k:k + 1], s[rows, k:k + 1])
        assert auc[k] == pytest.approx(roc_auc_score(t[rows, k], s[rows, k]), abs=1e-12)
        assert auc[k] == pytest.approx(a1[0], abs=1e-12)
        np.testing.assert_allclose(phi[rows, k], p1[:, 0], atol=1e-14)
        assert np.all(phi[~rows, k] == 0)


def test_masked_comparison_equals_the_subset_comparison():
    rng = np.random.default_rng(6)
    n_pat, per = 60, 3
    g = np.repeat(np.arange(n_pat), per)
    n = len(g)
    t = (rng.random((n, 1)) < 0.35).astype(float)
    a = t + rng.normal(0, 1.0, (3, n, 1))  # 3 seeds: a seed term, so a p (none from one seed)
    b = t + rng.normal(0, 1.4, (3, n, 1))
    known = rng.random((n, 1)) < 0.6
    t[~known] = np.nan
    masked = stats.paired_comparison(t, g, a, b, rule=ANY, mask=known)
    rows = known[:, 0]
    sub = stats.paired_comparison(t[rows], g[rows], a[:, rows], b[:, rows], rule=ANY)
    assert masked.delta == pytest.approx(sub.delta, abs=1e-12)
    assert masked.var_test == pytest.approx(sub.var_test, rel=1e-10)
    assert masked.var_seed == pytest.approx(sub.var_seed, rel=1e-10)
    assert np.isfinite(masked.p_value)
    assert masked.p_value == pytest.approx(sub.p_value, rel=1e-9)


def test_masked_mean_over_classes_clusters_each_class_on_its_rows():
    # two classes labelled on different images of the same patients: the clustered variance
    # of the mean is that of the mean of the per-class influences, each from its own subset
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(50), 4)
    n = len(g)
    t = (rng.random((n, 2)) < 0.4).astype(float)
    a, b = t + rng.normal(0, 1, (n, 2)), t + rng.normal(0, 1.3, (n, 2))
    known = np.zeros((n, 2), bool)
    known[: n // 2 + 40, 0] = True
    known[n // 2 - 40:, 1] = True
    t[~known] = np.nan
    res = stats.paired_comparison(t, g, a, b, rule=ANY, mask=known)
    gi, ng = stats.group_index(g)
    psi = np.zeros(n)
    deltas = []
    for k in range(2):
        rows = known[:, k]
        aa, pa = stats.influence(t[rows, k:k + 1].astype(bool), a[rows, k:k + 1])
        ab, pb = stats.influence(t[rows, k:k + 1].astype(bool), b[rows, k:k + 1])
        psi[rows] += (pa[:, 0] - pb[:, 0]) / 2
        deltas.append(aa[0] - ab[0])
    assert res.delta == pytest.approx(np.mean(deltas), abs=1e-12)
    assert res.var_test == pytest.approx(stats.clustered_variance(psi, gi, ng), rel=1e-10)


def test_sparse_rule_counts_labelled_rows_only():
    t = np.zeros((40, 2))
    t[:20] = 1
    known = np.ones((40, 2), bool)
    known[5:20, 1] = False  # class 1: 5 labelled positives left
    groups = np.arange(40)
    used, left = stats.SparseRule(10, 10).check(t, groups, mask=known)
    assert used == [0] and "5 positive images" in left[1]
    assert stats.SparseRule(10, 10).check(t, groups)[0] == [0, 1]
