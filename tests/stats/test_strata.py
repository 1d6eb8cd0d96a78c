"""Per-class Δ and strata (issue 25 item 4): exact decompositions and the leaderboard's
comparison on one class."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench import stats
from mlbench.stats.strata import (
    class_stats,
    per_class_delta,
    stratified_auc,
    stratum_masks,
    win_loss,
)


def _data(n=400, c=4, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.random((n, c)) < 0.3
    s = t * 0.8 + rng.normal(size=(n, c))
    return t, s


def test_positive_and_negative_strata_split_the_class_auc_exactly():
    t, s = _data()
    masks = stratum_masks(t)
    n_find = t.sum(axis=1)
    for c in range(t.shape[1]):
        full = stats.per_class_auc(t[:, [c]], s[:, [c]])[0]
        for names, side in ((("pos 1 finding", "pos >=2 findings"), t[:, c]),
                            (("neg no finding", "neg >=1 finding"), ~t[:, c])):
            total, mixed = side.sum(), 0.0
            for name in names:
                m = masks[name][:, c]
                auc = stats.per_class_auc(t[m][:, [c]], s[m][:, [c]])[0]
                mixed += (m & side).sum() / total * auc
            assert mixed == pytest.approx(full, abs=1e-12)
    # a stratum's mean is over the classes estimable in it
    got = stratified_auc(t, s, masks, [0, 1, 2, 3])
    m = masks["pos >=2 findings"]
    want = np.mean([stats.per_class_auc(t[m[:, c]][:, [c]], s[m[:, c]][:, [c]])[0]
                    for c in range(4)])
    assert got["pos >=2 findings"] == pytest.approx(want)
    assert (n_find == 0).any() and "view PA" not in masks
    views = np.where(np.arange(len(t)) % 3 == 0, "AP", "PA")
    assert stratum_masks(t, views)["view AP"][:, 0].sum() == (views == "AP").sum()


def test_per_class_delta_is_the_leaderboards_comparison_on_one_class():
    t, _ = _data(300, 3, 1)
    rng = np.random.default_rng(2)
    classes = [0, 1, 2]
    a = [class_stats(t, t * 1.0 + rng.normal(size=t.shape), classes) for _ in range(4)]
    b = [class_stats(t, t * 0.5 + rng.normal(size=t.shape), classes) for _ in range(4)]
    g = np.arange(len(t)) // 2  # two images per patient
    gi, ng = stats.group_index(g)
    comps = per_class_delta(a, b, gi, ng)
    for k, comp in enumerate(comps):
        alone = stats.compare([x[k] for x in a], [y[k] for y in b], gi, ng)
        assert comp.delta == pytest.approx(alone.delta)
        assert comp.var_test == pytest.approx(alone.var_test)
        assert np.isfinite(comp.ci_lo) and comp.ci_lo < comp.delta < comp.ci_hi
    # the mean over classes of the per-class Δ is the Δ of the mean AUC
    mean_a = [stats.RunStats(np.array([r.mean_auc for r in x]), np.mean([r.psi for r in x], 0))
              for x in a]
    mean_b = [stats.RunStats(np.array([r.mean_auc for r in y]), np.mean([r.psi for r in y], 0))
              for y in b]
    whole = stats.compare(mean_a, mean_b, gi, ng)
    assert np.mean([c.delta for c in comps]) == pytest.approx(whole.delta)
    counts = win_loss(comps)
    assert counts["wins"] + counts["losses"] + counts["ties"] == 3 and counts["above"] == 3
    chance = per_class_delta(a, None, gi, ng)
    assert chance[0].delta == pytest.approx(np.mean([x[0].mean_auc for x in a]) - 0.5)


def test_a_stratum_table_gives_the_numbers_of_stratified_auc_exactly():
    from mlbench.stats.strata import pack_table, run_table, table_mean, unpack_table

    t, s = _data(500, 5, 3)
    s = np.round(s, 1)  # ties
    views = np.where(np.arange(len(t)) % 4 == 0, "AP", "PA")
    masks = stratum_masks(t, views)
    table = run_table(t, s, views, ["a", "b", "c", "d", "e"])
    back = unpack_table(list(table), pack_table(table))  # as the results store keeps it
    for classes in ([0, 1, 2, 3, 4], [1, 3], [4, 0, 2]):
        want = stratified_auc(t, s, masks, classes)
        for got in (table_mean(table, classes), table_mean(back, classes)):
            assert list(got) == list(want)
            assert all(got[k] == want[k] or (np.isnan(got[k]) and np.isnan(want[k]))
                       for k in want)  # identical, not close
    # a "No Finding" column does not count as a finding
    named = run_table(t, s, None, ["a", "b", "c", "d", "No Finding"])
    assert table_mean(named, [0])["neg no finding"] == stratified_auc(
        t, s, stratum_masks(t, None, [0, 1, 2, 3]), [0])["neg no finding"]


def test_unknown_labels_are_in_no_stratum():
    from mlbench.stats.strata import run_table

    t, s = _data(400, 3, 4)
    known = np.random.default_rng(5).random(t.shape) < 0.7
    table = run_table(t, s, None, ["a", "b", "c"], label_mask=known)
    masks = stratum_masks(t)
    for name, mask in masks.items():
        for c in range(3):
            rows = mask[:, c] & known[:, c]
            assert table[name]["pos"][c] == (t[rows, c]).sum()
            assert table[name]["auc"][c] == pytest.approx(
                stats.per_class_auc(t[rows][:, [c]], s[rows][:, [c]])[0])
