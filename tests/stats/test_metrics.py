"""Per-run metrics against scikit-learn and against plain reference computations; the
records a run stores (metric_records)."""

import warnings

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
from mlbench.stats import bootstrap_ci, evaluate_scores, metric_records, metrics
from tests.helpers import FINDINGS, fake_scores, fake_targets


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
    for c in range(t.shape[1]):
        if 0 < t[:, c].sum() < len(t):
            assert auc[c] == pytest.approx(roc_auc_score(t[:, c], s[:, c]), abs=1e-12)
            assert ap[c] == pytest.approx(average_precision_score(t[:, c], s[:, c]), abs=1e-12)
        else:
            assert np.isnan(auc[c]) and np.isnan(ap[c])
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
        ci = stats.bootstrap_ci(t, s, n_boot=50)
        dl = stats.paired_comparison(t, np.arange(50), s, s[::-1], rule=stats.SparseRule(1, 1))
    assert out["skipped"] == [1, 3]
    assert np.isnan(out["auc"][[1, 3]]).all() and np.isnan(out["ap"][[1, 3]]).all()
    expect = np.mean([roc_auc_score(t[:, c], s[:, c]) for c in (0, 2)])
    assert out["mean_auc"] == pytest.approx(expect)
    assert np.isnan(ci["auc_lo"][[1, 3]]).all() and not np.isnan(ci["auc_lo"][[0, 2]]).any()
    assert sorted(dl.left_out) == [1, 3] and dl.classes == [0, 2] and np.isfinite(dl.var_test)
    assert np.isnan(dl.p_value)  # one seed: no seed term, no test (issue 30)


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
    a = stats.bootstrap_ci(t, s, n_boot=200, seed=5)
    b = stats.bootstrap_ci(t, s, n_boot=200, seed=5)
    c = stats.bootstrap_ci(t, s, n_boot=200, seed=6)
    np.testing.assert_array_equal(a["auc_lo"], b["auc_lo"])
    assert a["mean_auc_lo"] != c["mean_auc_lo"]
    auc = metrics.per_class_auc(t, s)
    assert np.all(a["auc_lo"] < auc) and np.all(auc < a["auc_hi"])
    assert a["mean_auc_lo"] < auc.mean() < a["mean_auc_hi"]
    assert 0.005 < a["mean_auc_se"] < 0.05


def test_label_ranking_equals_sklearn_on_images_with_both_labels():
    rng = np.random.default_rng(2)
    t = (rng.random((80, 5)) < 0.3).astype(int)
    t[0], t[1] = 0, 1  # no positives, all positives: no ranking to get right, left out
    s = t + rng.normal(0, 1.0, t.shape)
    out = metrics.label_ranking(t, s)
    keep = (t.sum(1) > 0) & (t.sum(1) < 5)
    assert out["n_ranked"] == keep.sum() < 80
    assert out["lrap"] == pytest.approx(label_ranking_average_precision_score(t[keep], s[keep]))
    assert out["ranking_loss"] == pytest.approx(label_ranking_loss(t[keep], s[keep]))
    assert np.isnan(metrics.label_ranking(np.zeros((3, 2)), np.zeros((3, 2)))["lrap"])


def test_bootstrap_moved_to_stats_and_old_import_still_works():
    assert metrics.bootstrap_ci is stats.bootstrap_ci


@settings(max_examples=60, deadline=None)
@given(labelled_scores(), st.integers(0, 2**32 - 1))
def test_weighted_auc_without_resorting_equals_resampled_ranking(data, seed):
    t, s = data
    t = t.astype(bool)
    idx = np.random.default_rng(seed).integers(0, len(t), len(t))
    w = np.bincount(idx, minlength=len(t)).astype(float)[None]
    fast = stats.WeightedAUC(t, s)(w)[0]
    expect = metrics.per_class_auc(t[idx], s[idx])
    np.testing.assert_allclose(fast, expect, rtol=0, atol=1e-12)


def test_patient_bootstrap_is_wider_than_image_bootstrap_when_patients_repeat():
    # 40 patients x 10 near-copies of one image: resampling images sees 400 independent ones
    rng = np.random.default_rng(7)
    base_t = (rng.random((40, 2)) < 0.4).astype(int)
    base_t[0], base_t[1] = 1, 0
    base_s = base_t + rng.normal(0, 1, base_t.shape)
    t = np.repeat(base_t, 10, axis=0)
    s = np.repeat(base_s, 10, axis=0) + rng.normal(0, 0.05, (400, 2))
    groups = np.repeat(np.arange(40), 10)
    img = stats.bootstrap_ci(t, s, n_boot=300, seed=0)
    pat = stats.bootstrap_ci(t, s, groups=groups, n_boot=300, seed=0)
    assert pat["mean_auc_se"] > 2 * img["mean_auc_se"]


def test_metric_records_match_metrics_module():
    rng = np.random.default_rng(0)
    targets = fake_targets(rng, 120)
    scores = fake_scores(targets, 1.0, rng).astype(np.float32)
    targets[:, 3] = 0  # a class without positives: NaN, left out of the mean
    rows = {(n, f): (v, lo, hi) for n, f, v, lo, hi in
            metric_records(targets, scores, FINDINGS, n_boot=30, seed=1)}
    point = evaluate_scores(targets, scores)
    ci = bootstrap_ci(targets, scores, n_boot=30, seed=1)
    assert rows[("mean_auc", "")] == (point["mean_auc"], ci["mean_auc_lo"], ci["mean_auc_hi"])
    assert rows[("map", "")][0] == point["mean_ap"]
    assert np.isnan(rows[("auc", "F3")][0])
    assert rows[("auc", "F0")] == (point["auc"][0], ci["auc_lo"][0], ci["auc_hi"][0])
    assert {("lrap", ""), ("ranking_loss", "")} <= set(rows)  # label-ranking metrics
    assert len(rows) == 4 + 2 * 14
