"""Comparisons of losses: the paired comparison and one loss's CI with a seed term and a
patient-clustered test-set term (:mod:`mlbench.stats.seedvar`: the seed variance, its outlier
p against the setup's others, the test term's df and the test), the pooled seed variance of the rule before issue 30
(``pooled_seed_variance``, kept for calibration) and Holm's adjustment. See
:mod:`mlbench.stats` for the formulas."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mlbench.stats import seedvar
from mlbench.stats.delong import RunStats, SparseRule, run_stats
from mlbench.stats.metrics import group_index

# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """A paired comparison of two losses (``delta`` = a - b, in mean AUC over ``classes``),
    or, from :func:`mean_ci`, one loss's mean AUC (``delta`` = the mean). With fewer than two
    matched seeds there is no seed term and no test: ``se``, the CI and ``p_value`` are NaN
    and ``seed_term`` says why."""

    delta: float
    se: float
    ci_lo: float
    ci_hi: float
    p_value: float
    df: float
    n_seeds: int
    var_seed: float  # seed term, variance of the seed mean (NaN with one seed: absent)
    var_test: float  # patient-clustered test-set term shared by the seeds
    seed_term: str  # "own (2 df)", "moderated (own 4 df + prior 4.0 df)", "none (1 seed) ..."
    classes: list[int] = field(default_factory=list)
    left_out: dict[int, str] = field(default_factory=dict)
    df_seed: float = float("nan")
    df_test: float = float("nan")
    sd_seed: float = float("nan")  # SD over seeds of the paired differences (or of the means)
    outlier_p: float = float("nan")  # upper-tail p of that spread under the other units' prior

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SeedTerm:
    """The seed term of one comparison (or one loss's mean), from :func:`seed_terms`."""

    var: float  # variance of one seed's value (the own); NaN: fewer than 2 seeds
    df: float
    own_var: float
    own_df: float
    prior_df: float  # d0 it got (0: own variance only, the leaderboard's)
    prior_var: float  # s0^2 of the others (NaN: none)
    outlier_p: float  # upper-tail p of own_var under the others' prior (NaN: none)

    @property
    def label(self) -> str:
        if not np.isfinite(self.var):
            return "none (1 seed): no test"
        if self.prior_df > 0.05:
            return f"moderated (own {self.own_df:g} df + prior {self.prior_df:.1f} df)"
        return f"own ({self.own_df:g} df)"


def seed_terms(samples: list, *, moderated: bool = False, **kw) -> list[SeedTerm]:
    """Seed terms of a setup's comparisons, or of its losses' means, with each unit's outlier
    p against the others' spreads (what the leaderboard's unstable marker reads).

    Args:
        samples: one array per unit: the per-seed paired differences of a comparison (or the
            per-seed mean AUC of a loss); fewer than 2 values: no seed term.
        moderated: the seed variance moderated towards the others'
            (:func:`mlbench.stats.seedvar.moderate`, the rule before the fourth round of issue
            30) instead of the unit's own (S - 1 df), the leaderboard's.
        **kw: ``min_seeds`` / ``alpha`` / ... of :func:`mlbench.stats.seedvar.moderate`.

    Returns:
        One :class:`SeedTerm` per unit. A unit alone (e.g. the two losses of
        :func:`paired_comparison`) has no outlier p: there is nothing to compare it with.
    """
    own = np.array([np.var(x, ddof=1) if len(x) >= 2 else np.nan for x in samples], float)
    d = np.array([max(len(x) - 1, 0) for x in samples], float)
    m = seedvar.moderate(own, d, **kw)
    if not moderated:
        m = {**m, "var": np.where(d >= 1, own, np.nan), "df": np.where(d >= 1, d, np.nan),
             "d0": np.zeros(len(own))}
    return [SeedTerm(float(m["var"][k]), float(m["df"][k]), float(own[k]), float(d[k]),
                     float(m["d0"][k]), float(m["s0"][k]), float(m["p"][k]))
            for k in range(len(samples))]


def _patient_sums(psi: np.ndarray, group_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """(S, N) per-seed influence values -> (S, G) their sums per patient."""
    psi = np.atleast_2d(np.asarray(psi, dtype=np.float64))
    s = psi.shape[0]
    offs = (np.arange(s) * n_groups)[:, None]
    return np.bincount((group_idx[None, :] + offs).ravel(), psi.ravel(),
                       s * n_groups).reshape(s, n_groups)


def _result(values, psi, group_idx, n_groups, seed: SeedTerm | None, alpha, classes,
            left_out, centre: float = 0.0) -> Comparison:
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    seed = seed or seed_terms([values])[0]
    var_test, df_test = (float(x) for x in seedvar.test_term(_patient_sums(psi, group_idx,
                                                                           n_groups)))
    delta = float(values.mean())
    sd = float(np.sqrt(seed.own_var)) if np.isfinite(seed.own_var) else np.nan
    common = dict(classes=list(classes), left_out=dict(left_out), sd_seed=sd,
                  outlier_p=seed.outlier_p)
    nan = float("nan")
    if n < 2 or not np.isfinite(seed.var):  # no seed term: no CI, no test (issue 30)
        return Comparison(delta, nan, nan, nan, nan, nan, n, nan, var_test, seed.label,
                          df_test=df_test, **common)
    vs = seed.var / n
    df = float(seedvar.t_df(vs, seed.df, var_test, df_test))
    se = float(np.sqrt(vs + var_test))
    p = float(seedvar.p_value(delta - centre, vs, seed.df, var_test, df_test))
    h = seedvar.ci_half_width(vs, seed.df, var_test, df_test, alpha)
    return Comparison(delta, se, float(delta - h), float(delta + h), p, df, n,
                      float(vs), var_test, seed.label, df_seed=seed.df, df_test=df_test,
                      **common)


def compare(a: list[RunStats], b: list[RunStats], group_idx: np.ndarray, n_groups: int, *,
            alpha: float = 0.05, seed: SeedTerm | None = None, classes=(),
            left_out=None) -> Comparison:
    """The paired comparison a - b from per-seed :class:`RunStats` (seeds paired by index).

    ``seed``: the comparison's seed term from :func:`seed_terms` (with its outlier p among
    the setup's comparisons); default: its own seed variance alone. p and CI:
    :func:`mlbench.stats.seedvar.p_value` / ``ci_half_width`` of the seed term and the test
    term (t on ``seedvar.t_df`` with 3+ seeds, Behrens-Fisher with 2).
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"Expected the same number (>= 1) of seeds, got {len(a)} and {len(b)}")
    d = np.array([x.mean_auc - y.mean_auc for x, y in zip(a, b, strict=True)])
    psi = np.stack([x.psi - y.psi for x, y in zip(a, b, strict=True)])
    return _result(d, psi, group_idx, n_groups, seed, alpha, classes, left_out or {})


def mean_ci(runs: list[RunStats], group_idx: np.ndarray, n_groups: int, *,
            alpha: float = 0.05, seed: SeedTerm | None = None, classes=(),
            left_out=None) -> Comparison:
    """CI of one loss's mean AUC over seeds, with the same two terms as :func:`compare`
    (``p_value`` is that of mean AUC = 0.5, rarely useful); ``seed`` from :func:`seed_terms`
    over the setup's losses, default its own."""
    means = np.array([r.mean_auc for r in runs])
    psi = np.stack([r.psi for r in runs])
    return _result(means, psi, group_idx, n_groups, seed, alpha, classes, left_out or {},
                   centre=0.5)


def paired_comparison(targets, groups, scores_a, scores_b, *, alpha: float = 0.05,
                      rule: SparseRule | None = None, mask=None) -> Comparison:
    """Paired comparison of two losses' mean AUC on one test set (SPEC §5.1).

    Exactly a leaderboard row's computation: the seed term is the pair's own seed variance
    of the paired differences (S - 1 df); the patient-clustered test term with its own df;
    p and CI counting both terms' uncertainty (:func:`mlbench.stats.seedvar.p_value`: t on
    ``seedvar.t_df`` with 3+ seeds, Behrens-Fisher with 2). One seed: no seed term, so no CI
    and no p (NaN).

    Args:
        targets: (N, C) in {0, 1}.
        groups: (N,) patient id of every image.
        scores_a, scores_b: (S, N, C) or (N, C): S seeds paired by index.
        alpha: 1 - confidence level of the CI.
        rule: which classes are used (default :class:`SparseRule()`).
        mask: optional (N, C) bool, True where a label is known: each class over its
            labelled rows (``mlbench.stats.metrics``).

    Returns:
        :class:`Comparison` of a - b.
    """
    rule = rule or SparseRule()
    sa, sb = np.asarray(scores_a), np.asarray(scores_b)
    sa, sb = (sa[None] if sa.ndim == 2 else sa), (sb[None] if sb.ndim == 2 else sb)
    if sa.shape != sb.shape:
        raise ValueError(f"Expected scores of one shape, got {sa.shape} and {sb.shape}")
    t = np.asarray(targets)
    g = np.asarray(groups).reshape(-1)
    if g.shape[0] != t.shape[0]:
        raise ValueError(f"Expected one group per image ({t.shape[0]}), got {g.shape[0]}")
    classes, left = rule.check(t, g, mask)
    gi, ng = group_index(g)
    if not classes:
        nan = float("nan")
        return Comparison(nan, nan, nan, nan, nan, nan, sa.shape[0], nan, nan, "", [], left)
    ra = [run_stats(t, s, classes, mask) for s in sa]
    rb = [run_stats(t, s, classes, mask) for s in sb]
    return compare(ra, rb, gi, ng, alpha=alpha, classes=classes, left_out=left)


# --------------------------------------------------------------------------- before issue 30


def pooled_seed_variance(table: np.ndarray) -> tuple[float, float, float, float]:
    """Seed variances pooled over the losses of one setup (mixed model: loss fixed, seed
    random) -- the leaderboard's rule before issue 30, kept for ``mlbench calibrate``.

    Args:
        table: (L, S) mean AUC per loss and seed, complete (no NaN).

    Returns:
        (var_diff, df_diff, var_mean, df_mean): the variance of a difference of two losses on
        one seed, 2 x the two-way residual mean square with (L-1)(S-1) df, and the variance of
        one loss's mean AUC on one seed, the within-loss mean square with L(S-1) df.
    """
    a = np.asarray(table, dtype=np.float64)
    n_l, n_s = a.shape
    if n_l < 2 or n_s < 2:
        return np.nan, 0.0, np.nan, 0.0
    resid = a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()
    df_d = (n_l - 1) * (n_s - 1)
    within = a - a.mean(axis=1, keepdims=True)
    df_m = n_l * (n_s - 1)
    return 2 * (resid**2).sum() / df_d, float(df_d), (within**2).sum() / df_m, float(df_m)


# --------------------------------------------------------------------------- multiplicity


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (monotone, capped at 1); NaN stays NaN and does
    not count as a hypothesis."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out
