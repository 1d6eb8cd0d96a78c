"""Metrics against scikit-learn and against plain reference computations."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score, roc_auc_score

from mlbench import metrics


@st.composite
def labelled_scores(draw):
    n = draw(st.integers(2, 40))
    c = draw(st.integers(1, 4))
    t = draw(arrays(np.int8, (n, c), elements=st.integers(0, 1)))
    # few distinct values -> many ties
    s = draw(arrays(np.float64, (n, c), elements=st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, 1.0, -3.0])))
    return t, s


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_auc_ap_equal_sklearn_with_ties(data):
    t, s = data
    auc = metrics.per_class_auc(t, s)
    ap = metrics.per_class_ap(t, s)
    fast = metrics._fast_auc(t.astype(bool), s)
    for c in range(t.shape[1]):
        if 0 < t[:, c].sum() < len(t):
            assert auc[c] == pytest.approx(roc_auc_score(t[:, c], s[:, c]), abs=1e-12)
            assert fast[c] == pytest.approx(auc[c], abs=1e-12)
            assert ap[c] == pytest.approx(average_precision_score(t[:, c], s[:, c]), abs=1e-12)
        else:
            assert np.isnan(auc[c]) and np.isnan(ap[c]) and np.isnan(fast[c])
            assert c in metrics.skipped_classes(t)


def test_single_valued_class_is_nan_skipped_and_silent():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (50, 4))
    t[:, 1] = 0
    t[:, 3] = 1
    s = rng.random((50, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = metrics.evaluate_scores(t, s)
        ci = metrics.bootstrap_ci(t, s, n_boot=50)
        dl = metrics.delong_mean_test(t, s, s[::-1])
    assert out["skipped"] == [1, 3]
    assert np.isnan(out["auc"][[1, 3]]).all() and np.isnan(out["ap"][[1, 3]]).all()
    expect = np.mean([roc_auc_score(t[:, c], s[:, c]) for c in (0, 2)])
    assert out["mean_auc"] == pytest.approx(expect)
    assert np.isnan(ci["auc_lo"][[1, 3]]).all() and not np.isnan(ci["auc_lo"][[0, 2]]).any()
    assert dl.skipped == [1, 3] and dl.classes == [0, 2] and np.isfinite(dl.p_value)


def test_all_classes_single_valued():
    t = np.zeros((10, 2))
    out = metrics.evaluate_scores(t, np.random.default_rng(0).random((10, 2)))
    assert np.isnan(out["mean_auc"]) and out["skipped"] == [0, 1]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        metrics.per_class_auc(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        metrics.per_class_auc(np.full((3, 1), 2), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="finite"):
        metrics.per_class_auc(np.array([0, 1]), np.array([0.0, np.nan]))


def test_bootstrap_seeded_and_covers_point_estimate():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, (200, 3))
    s = t + rng.normal(0, 1.0, t.shape)
    a = metrics.bootstrap_ci(t, s, n_boot=200, seed=5)
    b = metrics.bootstrap_ci(t, s, n_boot=200, seed=5)
    c = metrics.bootstrap_ci(t, s, n_boot=200, seed=6)
    np.testing.assert_array_equal(a["auc_lo"], b["auc_lo"])
    assert a["mean_auc_lo"] != c["mean_auc_lo"]
    auc = metrics.per_class_auc(t, s)
    assert np.all(a["auc_lo"] < auc) and np.all(auc < a["auc_hi"])
    assert a["mean_auc_lo"] < auc.mean() < a["mean_auc_hi"]
    assert 0.005 < a["mean_auc_se"] < 0.05


@settings(max_examples=60, deadline=None)
@given(labelled_scores(), st.integers(0, 2**32 - 1))
def test_bootstrap_auc_without_resorting_equals_resampled_ranking(data, seed):
    t, s = data
    t = t.astype(bool)
    idx = np.random.default_rng(seed).integers(0, len(t), len(t))
    fast = metrics._BootstrapAUC(t, s)(np.bincount(idx, minlength=len(t)).astype(float))
    np.testing.assert_allclose(fast, metrics._fast_auc(t[idx], s[idx]), rtol=0, atol=1e-12)
