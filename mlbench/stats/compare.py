"""Comparisons of losses: the paired comparison and one loss's CI with a seed term and a
patient-clustered test-set term, the degrees-of-freedom rule (:func:`t_df`), the pooled seed
variance and Holm's adjustment. See :mod:`mlbench.stats` for the formulas."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as _st

from mlbench.stats.delong import RunStats, SparseRule, clustered_terms, run_stats
from mlbench.stats.metrics import group_index

# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """A paired comparison of two losses (``delta`` = a - b, in mean AUC over ``classes``),
    or, from :func:`mean_ci`, one loss's mean AUC (``delta`` = the mean)."""

    delta: float
    se: float
    ci_lo: float
    ci_hi: float
    p_value: float
    df: float
    n_seeds: int
    var_seed: float  # seed term (NaN with one seed: absent)
    var_test: float  # patient-clustered DeLong term
    seed_term: str  # "own (S-1 df)", "pooled over k losses (df)", "none (1 seed)"
    classes: list[int] = field(default_factory=list)
    left_out: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


MIN_WS_DF = 4  # below this many seed-term df, the test keeps the seed term's own df


def t_df(var_seed: float, df_seed: float, var_test: float, rule: str = "ws-guard") -> float:
    """Degrees of freedom of the t statistic with a seed term and a test-set term.

    ``"ws"``: Welch-Satterthwaite, the test term with infinite df,
    (vs + vt)^2 / (vs^2 / df_seed). ``"seed"``: df_seed. ``"ws-guard"`` (the leaderboard's):
    Welch-Satterthwaite when df_seed >= MIN_WS_DF, else df_seed -- the Welch-Satterthwaite df
    treats the estimated test term as exact, which with 2 seed df rejected 6.4% of simulated
    A/A nulls at 5% (3.9% with the seed df; ``mlbench calibrate``). No seed term: infinite.
    """
    vs = 0.0 if not np.isfinite(var_seed) else float(var_seed)
    if vs <= 0:
        return np.inf
    if rule == "seed" or (rule == "ws-guard" and df_seed < MIN_WS_DF):
        return float(df_seed)
    return (vs + float(var_test)) ** 2 / (vs**2 / df_seed)


def _t_result(delta, var_seed, df_seed, var_test, alpha, n_seeds, seed_term, classes,
              left_out) -> Comparison:
    vs = 0.0 if not np.isfinite(var_seed) else float(var_seed)
    var = vs + float(var_test)
    df = t_df(var_seed, df_seed, var_test)
    se = float(np.sqrt(var))
    if se > 0:
        q = _st.t.ppf(1 - alpha / 2, df)
        p = float(2 * _st.t.sf(abs(delta) / se, df))
    else:
        q, p = 0.0, 1.0 if delta == 0 else 0.0
    return Comparison(float(delta), se, float(delta - q * se), float(delta + q * se), p,
                      float(df), n_seeds, float(var_seed), float(var_test), seed_term,
                      list(classes), dict(left_out))


def pooled_seed_variance(table: np.ndarray) -> tuple[float, float, float, float]:
    """Seed variances pooled over the losses of one setup (mixed model: loss fixed, seed random).

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


def _seed_term(values: np.ndarray, pooled) -> tuple[float, float, str]:
    n_seeds = len(values)
    if n_seeds == 1:
        return np.nan, np.inf, "none (1 seed)"
    if pooled is not None and np.isfinite(pooled[0]):
        return pooled[0] / n_seeds, pooled[1], f"pooled over {pooled[2]} losses ({pooled[1]:g} df)"
    return values.var(ddof=1) / n_seeds, n_seeds - 1, f"own ({n_seeds - 1} df)"


def compare(a: list[RunStats], b: list[RunStats], group_idx: np.ndarray, n_groups: int, *,
            alpha: float = 0.05, pooled: tuple[float, float, int] | None = None,
            classes=(), left_out=None) -> Comparison:
    """The paired comparison a - b from per-seed :class:`RunStats` (seeds paired by index).

    ``pooled``: (variance of a one-seed difference, its df, number of losses pooled), used
    instead of the pair's own seed variance when given and S >= 2.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"Expected the same number (>= 1) of seeds, got {len(a)} and {len(b)}")
    d = np.array([x.mean_auc - y.mean_auc for x, y in zip(a, b, strict=True)])
    psi = np.stack([x.psi - y.psi for x, y in zip(a, b, strict=True)])
    var_test, _ = clustered_terms(psi, group_idx, n_groups)
    var_seed, df_seed, term = _seed_term(d, pooled)
    return _t_result(d.mean(), var_seed, df_seed, var_test, alpha, len(d), term, classes,
                     left_out or {})


def mean_ci(runs: list[RunStats], group_idx: np.ndarray, n_groups: int, *,
            alpha: float = 0.05, pooled: tuple[float, float, int] | None = None,
            classes=(), left_out=None) -> Comparison:
    """CI of one loss's mean AUC over seeds, with the same two terms as :func:`compare`
    (``p_value`` is that of mean AUC = 0.5, rarely useful)."""
    means = np.array([r.mean_auc for r in runs])
    var_test, _ = clustered_terms(np.stack([r.psi for r in runs]), group_idx, n_groups)
    var_seed, df_seed, term = _seed_term(means, pooled)
    res = _t_result(means.mean() - 0.5, var_seed, df_seed, var_test, alpha, len(means), term,
                    classes, left_out or {})
    res.delta, res.ci_lo, res.ci_hi = res.delta + 0.5, res.ci_lo + 0.5, res.ci_hi + 0.5
    return res


def paired_comparison(targets, groups, scores_a, scores_b, *, alpha: float = 0.05,
                      rule: SparseRule | None = None, mask=None) -> Comparison:
    """Paired comparison of two losses' mean AUC on one test set (SPEC §5.1).

    Args:
        targets: (N, C) in {0, 1}.
        groups: (N,) patient id of every image.
        scores_a, scores_b: (S, N, C) or (N, C): S seeds paired by index (S = 1 allowed).
        alpha: 1 - confidence level of the CI.
        rule: which classes are used (default :class:`SparseRule()`).
        mask: optional (N, C) bool, True where a label is known: each class over its
            labelled rows (``mlbench.stats.metrics``).

    Returns:
        :class:`Comparison` of a - b with the seed term (own seed variance of the differences,
        S - 1 df; absent with S = 1) and the patient-clustered DeLong term.
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
