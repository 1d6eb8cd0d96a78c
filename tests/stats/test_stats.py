"""The comparison statistics: seed term, test term, sparse-class rule, Holm."""

import numpy as np
import pytest
from scipy import stats as st

from mlbench import stats
from mlbench.stats import seedvar


def _runs(rng, n=300, c=3, seeds=3, signal=1.0, seed_shift=None):
    t = (rng.random((n, c)) < 0.3).astype(int)
    t[0], t[1] = 1, 0
    shifts = np.zeros(seeds) if seed_shift is None else np.asarray(seed_shift)
    s = np.stack([(signal + shifts[k]) * t + rng.normal(0, 1, t.shape) for k in range(seeds)])
    return t, s


def test_one_seed_has_no_seed_term_so_no_ci_and_no_test():
    """With one seed a p-value is about two trained networks, not two losses (issue 30)."""
    rng = np.random.default_rng(0)
    t, a = _runs(rng, seeds=1)
    _, b = _runs(rng, seeds=1)
    res = stats.paired_comparison(t, np.arange(len(t)), a, b)
    assert res.n_seeds == 1 and np.isnan(res.var_seed) and np.isfinite(res.delta)
    assert np.isnan(res.p_value) and np.isnan(res.ci_lo) and np.isnan(res.se)
    assert res.var_test > 0 and "no test" in res.seed_term


def test_seed_term_and_df_counting_both_terms():
    rng = np.random.default_rng(1)
    t = (rng.random((400, 3)) < 0.3).astype(int)
    a = np.stack([t * (1 + 0.3 * k) + rng.normal(0, 1, t.shape) for k in range(6)])
    b = np.stack([t + rng.normal(0, 1, t.shape) for _ in range(6)])
    res = stats.paired_comparison(t, np.arange(400), a, b)
    classes = res.classes
    d = np.array([stats.run_stats(t, x, classes).mean_auc - stats.run_stats(t, y, classes).mean_auc
                  for x, y in zip(a, b, strict=True)])
    assert res.delta == pytest.approx(d.mean())
    assert res.var_seed == pytest.approx(d.var(ddof=1) / 6)  # two losses: their own
    assert res.seed_term == "own (5 df)" and res.df_seed == 5
    v = res.var_seed + res.var_test
    assert res.se == pytest.approx(np.sqrt(v))
    both = float(seedvar.satterthwaite(res.var_seed, 5, res.var_test, res.df_test))
    # df: Satterthwaite of both estimated terms with the seed term at its upper bound
    assert res.df == pytest.approx(float(seedvar.t_df(res.var_seed, 5, res.var_test,
                                                      res.df_test)))
    assert 5 <= res.df < both <= v**2 / (res.var_seed**2 / 5)
    # p: Student t on that df, floored at BF_FLOOR x Behrens-Fisher's; the CI its inversion
    t_stat = abs(res.delta) / res.se
    bf = float(seedvar.behrens_fisher(res.delta, res.var_seed, 5, res.var_test, res.df_test))
    assert res.p_value == pytest.approx(max(2 * st.t.sf(t_stat, res.df),
                                            seedvar.BF_FLOOR * bf))
    assert res.p_value >= 2 * st.t.sf(t_stat, res.df)
    h = (res.ci_hi - res.ci_lo) / 2
    assert res.delta == pytest.approx((res.ci_hi + res.ci_lo) / 2)
    assert h >= st.t.ppf(0.975, res.df) * res.se * (1 - 1e-9)
    assert float(seedvar.p_value(h, res.var_seed, 5, res.var_test, res.df_test)) \
        == pytest.approx(0.05, rel=1e-6)
    few = stats.paired_comparison(t, np.arange(400), a[:3], b[:3])
    assert few.df >= 2 and few.seed_term == "own (2 df)"
    # 2 seeds (1 df): Behrens-Fisher of the two estimated terms
    two = stats.paired_comparison(t, np.arange(400), a[:2], b[:2])
    assert two.p_value == pytest.approx(float(seedvar.behrens_fisher(
        two.delta, two.var_seed, 1, two.var_test, two.df_test)))
    assert float(seedvar.behrens_fisher((two.ci_hi - two.ci_lo) / 2, two.var_seed, 1,
                                        two.var_test, two.df_test)) == pytest.approx(0.05,
                                                                                     rel=1e-6)


def test_sign_flip_across_seeds_is_not_significant():
    # seed 0 favours a clearly, seed 1 favours b as clearly: each seed alone is "significant"
    rng = np.random.default_rng(2)
    t = (rng.random((3000, 2)) < 0.3).astype(int)
    a = np.stack([1.6 * t + rng.normal(0, 1, t.shape), 1.0 * t + rng.normal(0, 1, t.shape)])
    b = np.stack([1.0 * t + rng.normal(0, 1, t.shape), 1.6 * t + rng.normal(0, 1, t.shape)])
    g = np.arange(3000)
    one = [stats.paired_comparison(t, g, a[k], b[k]) for k in range(2)]
    per_seed = [2 * st.norm.sf(abs(r.delta) / np.sqrt(r.var_test)) for r in one]  # DeLong
    assert max(per_seed) < 1e-6
    res = stats.paired_comparison(t, g, a, b)
    assert res.p_value > 0.3 and res.ci_lo < 0 < res.ci_hi


def test_cross_seed_test_term_drops_each_runs_own_noise():
    """Two seeds with independent noise and no shared patient effect: the shared test term
    is about 0, while the variance of the seed-averaged influence is about half one seed's."""
    rng = np.random.default_rng(3)
    n = 2000
    psi = rng.normal(0, 1e-3, (2, n))
    g = np.arange(n)
    cross, avg = stats.clustered_terms(psi, g, n)
    one = stats.clustered_terms(psi[:1], g, n)[0]
    assert cross < 0.1 * one and avg == pytest.approx(one / 2, rel=0.15)
    shared = np.vstack([psi[0], psi[0]])  # the same influence on both seeds: all shared
    assert stats.clustered_terms(shared, g, n)[0] == pytest.approx(one)


def test_sparse_rule_counts_images_and_patients():
    t = np.zeros((100, 4), int)
    t[:30, 0] = 1  # 30 positive images of 30 patients: used
    t[30:60, 1] = 1  # 30 positive images of 3 patients: too few patients
    t[:5, 2] = 1  # 5 positive images: too few images
    groups = np.arange(100)
    groups[30:60] = 1000 + np.arange(30) % 3
    used, left = stats.SparseRule(10, 10).check(t, groups)
    assert used == [0]
    assert "of 3 patients" in left[1] and "5 positive images" in left[2]
    assert "not estimable" in left[3]  # no positive at all
    assert stats.SparseRule(5, 3).check(t, groups)[0] == [0, 1, 2]


def test_holm_hand_checked():
    # p sorted: 0.01, 0.02, 0.03, 0.04 (m = 4): 0.04, 0.06, 0.06 (monotone), 0.06
    p = np.array([0.03, 0.01, np.nan, 0.04, 0.02])
    adj = stats.holm(p)
    np.testing.assert_allclose(adj, [0.06, 0.04, np.nan, 0.06, 0.06])
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])
    np.testing.assert_allclose(stats.holm([0.001]), [0.001])
    assert stats.holm([]).size == 0


def test_seed_terms_are_own_and_flag_the_outlier():
    """The leaderboard's seed terms: every unit its own variance (S - 1 df), with its outlier
    p against the others' spreads; ``moderated=True`` (the third-round rule) pools the
    agreeing ones only."""
    rng = np.random.default_rng(5)
    diffs = [rng.normal(0, 0.003, 5) for _ in range(7)] + [rng.normal(0, 0.03, 5)]
    own = stats.seed_terms(diffs)
    assert all(t.prior_df == 0 and t.df == 4 and t.var == pytest.approx(np.var(x, ddof=1))
               for t, x in zip(own, diffs, strict=True))
    assert own[7].outlier_p < 0.01 and all(t.outlier_p > 0.01 for t in own[:7])
    assert own[0].label == "own (4 df)"
    terms = stats.seed_terms(diffs, moderated=True)
    assert all(t.prior_df > 0 and t.df > 4 for t in terms[:7])
    assert terms[7].outlier_p < 0.01 and terms[7].prior_df < 0.5  # the unstable one: its own
    assert terms[7].var == pytest.approx(np.var(diffs[7], ddof=1), rel=0.05)
    few = stats.seed_terms([x[:2] for x in diffs], moderated=True)  # 2 seeds: own
    assert all(t.prior_df == 0 and t.var == pytest.approx(t.own_var) for t in few)
    assert few[0].label == "own (1 df)" and "moderated" in terms[0].label
    one = stats.seed_terms([diffs[0][:1]])[0]
    assert np.isnan(one.var) and "no test" in one.label


def test_pooled_seed_variance_is_the_two_way_residual():
    rng = np.random.default_rng(4)
    table = rng.normal(0.8, 0.01, (5, 3)) + rng.normal(0, 0.02, (1, 3))  # shared seed effect
    var_d, df_d, var_m, df_m = stats.pooled_seed_variance(table)
    assert df_d == 8 and df_m == 10
    # two losses: the pooled difference variance is that pair's own seed variance
    var2, df2, _, _ = stats.pooled_seed_variance(table[:2])
    assert var2 == pytest.approx(np.var(table[0] - table[1], ddof=1)) and df2 == 2
    assert var_m == pytest.approx(np.mean(np.var(table, axis=1, ddof=1)))
