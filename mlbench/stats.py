"""Comparison statistics of the leaderboard (SPEC §5.1): seeds × patient-clustered test set.

Two sources of uncertainty enter every interval and test:

* **training randomness**, from the spread of a run's mean AUC over seeds;
* **test-set sampling**: the test set is a sample of *patients*. Every image has a DeLong
  influence value per class (:func:`influence`); they are averaged over the classes used and
  over the seeds, summed within each patient, and the patient sums are squared and added
  (the clustered / sandwich form of DeLong's variance: with one image per patient it is
  exactly DeLong's).

For a loss L against the reference R on S seeds paired by index::

    delta   = mean_s [meanAUC(L, s) - meanAUC(R, s)]
    V_seed  = s2 / S          s2: seed variance of the differences (own: ddof 1, S-1 df;
                              pooled: two-way residual over the losses of a setup, (L-1)(S-1) df)
    V_test  = sum_patients (sum_images_of_patient psi)^2,
              psi = seed-averaged (L - R) influence, averaged over the classes used
    se      = sqrt(V_seed + V_test),  df = (V_seed + V_test)^2 / (V_seed^2 / df_seed)
              (Welch-Satterthwaite; df_seed itself when df_seed < 4, see ``t_df``)
    CI      = delta ± t_{df, 1-alpha/2} se,  p = 2 P(T_df > |delta| / se)

With one seed there is no seed term and the test uses the normal distribution (df = inf).

Classes too sparse for these asymptotics are left out of every mean, the same way for every
loss, by :class:`SparseRule` (it depends on the test labels and patients only). A class with a
single label value in the test split is not estimable at all.

``bootstrap_ci`` is the per-run patient-clustered bootstrap (resample patients, seeded),
vectorised over replicates. ``holm`` is Holm's step-down adjustment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as _st

from mlbench.metrics import _as_2d, _valid_mask

__all__ = [
    "Comparison",
    "RunStats",
    "SparseRule",
    "WeightedAUC",
    "bootstrap_ci",
    "clustered_variance",
    "compare",
    "dataset_ids",
    "group_index",
    "holm",
    "influence",
    "influence_levels",
    "mean_ci",
    "paired_comparison",
    "pooled_seed_variance",
    "run_stats",
    "t_df",
    "clustered_terms",
]


# --------------------------------------------------------------------------- classes used


@dataclass(frozen=True)
class SparseRule:
    """Which classes the comparison statistics use.

    A class is used when its test split has at least ``min_images`` positive and
    ``min_images`` negative images, from at least ``min_patients`` patients each. Fewer
    positives make DeLong's variance of a mean AUC badly biased (about half the truth with a
    handful of positives); the rule depends on the test labels and patients only, so every
    loss of a test set uses the same classes. A class with one label value is "not
    estimable" (no AUC at all).
    """

    min_images: int = 10
    min_patients: int = 10

    def describe(self) -> str:
        return (f"classes with >= {self.min_images} positive images from >= "
                f"{self.min_patients} patients (and as many negatives)")

    def check(self, targets, groups) -> tuple[list[int], dict[int, str]]:
        """(used class indices, {left-out class: reason}) for a test split."""
        t = np.asarray(targets).astype(bool)
        gi, _ = group_index(groups)
        used, left = [], {}
        for c in range(t.shape[1]):
            pos = t[:, c]
            n_pos, n_neg = int(pos.sum()), int((~pos).sum())
            if n_pos == 0 or n_neg == 0:
                left[c] = "not estimable (one label value)"
                continue
            p_pat = len(np.unique(gi[pos]))
            n_pat = len(np.unique(gi[~pos]))
            if min(n_pos, n_neg) < self.min_images or min(p_pat, n_pat) < self.min_patients:
                left[c] = (f"sparse: {n_pos} positive images of {p_pat} patients "
                           f"(rule: >= {self.min_images} of >= {self.min_patients})")
                continue
            used.append(c)
        return used, left


def group_index(groups) -> tuple[np.ndarray, int]:
    """Patient ids (any hashable values) -> (dense index (N,), number of patients)."""
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    inv = inv.reshape(-1)
    return inv, int(inv.max()) + 1 if inv.size else 0


# --------------------------------------------------------------------------- influence


def _tie_bounds(ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted along axis 1: first and last position of each element's tie group."""
    n = ss.shape[1]
    pos = np.arange(n)[None, :]
    new = np.ones(ss.shape, dtype=bool)
    new[:, 1:] = ss[:, 1:] != ss[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones(ss.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def influence(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUC and per-image DeLong influence values, vectorised over columns.

    With m positives and n negatives in a column, the structural components (DeLong et al.
    1988, midranks for ties) are V10_i = (#neg below + #neg tied / 2) / n for a positive and
    V01_j = (#pos above + #pos tied / 2) / m for a negative; both average to the AUC. The
    influence of an image is its centred component over sqrt(m(m-1)) (positive) or
    sqrt(n(n-1)) (negative), so that the sum of squared influences is DeLong's variance
    S10/m + S01/n and the sum of the differences of two models' influences squared is the
    paired DeLong variance of the difference. One sort per column.

    Args:
        targets: (N, K) bool, every column with both labels.
        scores: (N, K) or (N, K * R) (R score sets of the same targets side by side).

    Returns:
        (auc (K * R,), phi (N, K * R)).
    """
    t = np.asarray(targets, dtype=bool)
    s = np.asarray(scores)
    reps = s.shape[1] // max(t.shape[1], 1)
    if reps * t.shape[1] != s.shape[1] or s.shape[0] != t.shape[0]:
        raise ValueError(f"Expected scores (N, K*R) for targets {t.shape}, got {s.shape}")
    auc, phi = influence_rows(np.ascontiguousarray(np.tile(t, (1, reps)).T),
                              np.ascontiguousarray(s.T))
    return auc, phi.T


def influence_rows(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`influence` on rows: t (R, N) bool and s (R, N) -> (auc (R,), phi (R, N))."""
    n_all = t.shape[1]
    m = t.sum(axis=1, keepdims=True).astype(np.float64)
    n = n_all - m
    order = np.argsort(s, axis=1)
    ss = np.take_along_axis(s, order, 1)
    tp = np.take_along_axis(t, order, 1)
    cp = np.cumsum(tp, axis=1, dtype=np.int32)  # positives at or below, inclusive
    if np.any(ss[:, 1:] == ss[:, :-1]):  # ties: count them by tie group
        start, end = _tie_bounds(ss)
        cn = np.arange(1, n_all + 1, dtype=np.int32)[None, :] - cp  # negatives, inclusive
        cp_end = np.take_along_axis(cp, end, 1)
        cp_start = np.take_along_axis(cp, start, 1) - np.take_along_axis(tp, start, 1)
        cn_end = np.take_along_axis(cn, end, 1)
        cn_start = np.take_along_axis(cn, start, 1) - ~np.take_along_axis(tp, start, 1)
        below = cn_start + 0.5 * (cn_end - cn_start)  # negatives below, ties halved
        above = (m - cp_end) + 0.5 * (cp_end - cp_start)  # positives above, ties halved
    else:  # no ties: an element's position gives the counts
        below = np.arange(n_all, dtype=np.int32)[None, :] - (cp - tp)
        above = m - cp
    v = np.where(tp, below / n, above / m)  # V10 for positives, V01 for negatives
    auc = np.where(tp, v, 0.0).sum(axis=1, keepdims=True) / m
    v -= auc
    v *= np.where(tp, 1.0 / np.sqrt(np.maximum(m * (m - 1), 1.0)),
                  1.0 / np.sqrt(np.maximum(n * (n - 1), 1.0)))
    phi = np.empty_like(v)
    phi[np.arange(v.shape[0])[:, None], order] = v
    return auc[:, 0], phi


def influence_levels(t: np.ndarray, levels: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`influence_rows` for integer scores in [0, n_levels): the same numbers (ties by
    midranks, tested), by counting instead of sorting (O(N + n_levels) per row). The
    calibration quantises its simulated scores to use it: 3-5x faster than sorting.

    Args:
        t: (R, N) bool. levels: (R, N) int scores.

    Returns:
        (auc (R,), phi (R, N)).
    """
    r, n_all = t.shape
    idx = (levels + (np.arange(r) * n_levels)[:, None]).ravel()
    pos_h = np.bincount(idx, t.ravel(), r * n_levels).reshape(r, n_levels)
    neg_h = np.bincount(idx, None, r * n_levels).reshape(r, n_levels) - pos_h
    m = pos_h.sum(axis=1, keepdims=True)
    n = n_all - m
    v10 = (np.cumsum(neg_h, axis=1) - 0.5 * neg_h) / n  # negatives below, ties halved
    v01 = (m - np.cumsum(pos_h, axis=1) + 0.5 * pos_h) / m  # positives above, ties halved
    auc = (pos_h * v10).sum(axis=1, keepdims=True) / m
    v = np.where(t, np.take_along_axis(v10, levels, 1), np.take_along_axis(v01, levels, 1))
    v -= auc
    v *= np.where(t, 1.0 / np.sqrt(np.maximum(m * (m - 1), 1.0)),
                  1.0 / np.sqrt(np.maximum(n * (n - 1), 1.0)))
    return auc[:, 0], v


def clustered_variance(psi: np.ndarray, group_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """sum over patients of (sum of the patient's influence values)^2. psi (..., N) -> (...)."""
    psi = np.asarray(psi, dtype=np.float64)
    flat = psi.reshape(-1, psi.shape[-1])
    offs = (np.arange(flat.shape[0]) * n_groups)[:, None]
    sums = np.bincount((group_idx[None, :] + offs).ravel(), flat.ravel(),
                       flat.shape[0] * n_groups).reshape(flat.shape[0], n_groups)
    return (sums**2).sum(axis=1).reshape(psi.shape[:-1])


@dataclass
class RunStats:
    """What the comparison statistics need of one run: per-class AUC of the classes used
    and the class-averaged influence value of every test image."""

    auc: np.ndarray  # (K,) AUC of each used class
    psi: np.ndarray  # (N,) mean over used classes of the DeLong influence values

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean()) if self.auc.size else float("nan")


def run_stats(targets, scores, classes: list[int]) -> RunStats:
    """Per-class AUC and class-averaged influence of one run over ``classes``."""
    t, s = _as_2d(targets, scores)
    if not classes:
        return RunStats(np.full(0, np.nan), np.zeros(t.shape[0]))
    auc, phi = influence(t[:, classes], s[:, classes])
    return RunStats(auc, phi.mean(axis=1))


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


def clustered_terms(psi: np.ndarray, group_idx: np.ndarray, n_groups: int) -> tuple[float, float]:
    """The test-set term of a seed-averaged statistic from its per-seed influence values.

    Args:
        psi: (S, N) per-seed influence values (class-averaged; of a difference, or of one loss).

    Returns:
        (v_test, v_avg): ``v_test`` the test-set variance shared by the seeds: with S = 1 the
        clustered DeLong variance; with S >= 2 the mean over seed pairs s != s' of the
        clustered covariance sum_g Psi_sg Psi_s'g (Psi: the patient sums), floored at 0.
        ``v_avg`` is the clustered variance of the seed-averaged influence values,
        = (mean within-seed variance + (S-1) v_test) / S. The seed term (spread of the
        per-seed statistics on this test set) already holds each run's own test-set noise, so
        adding ``v_avg`` would count that part twice (the Obuchowski-Rockette covariance form
        of multi-reader multi-case ROC analysis, seeds as readers, patients as cases).
    """
    psi = np.atleast_2d(np.asarray(psi, dtype=np.float64))
    s = psi.shape[0]
    offs = (np.arange(s) * n_groups)[:, None]
    sums = np.bincount((group_idx[None, :] + offs).ravel(), psi.ravel(),
                       s * n_groups).reshape(s, n_groups)
    cov = sums @ sums.T
    v_avg = float(cov.sum()) / s**2
    if s == 1:
        return float(cov[0, 0]), v_avg
    cross = (float(cov.sum()) - float(np.trace(cov))) / (s * (s - 1))
    return max(cross, 0.0), v_avg


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
                      rule: SparseRule | None = None) -> Comparison:
    """Paired comparison of two losses' mean AUC on one test set (SPEC §5.1).

    Args:
        targets: (N, C) in {0, 1}.
        groups: (N,) patient id of every image.
        scores_a, scores_b: (S, N, C) or (N, C): S seeds paired by index (S = 1 allowed).
        alpha: 1 - confidence level of the CI.
        rule: which classes are used (default :class:`SparseRule()`).

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
    classes, left = rule.check(t, g)
    gi, ng = group_index(g)
    if not classes:
        nan = float("nan")
        return Comparison(nan, nan, nan, nan, nan, nan, sa.shape[0], nan, nan, "", [], left)
    ra = [run_stats(t, s, classes) for s in sa]
    rb = [run_stats(t, s, classes) for s in sb]
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


# --------------------------------------------------------------------------- bootstrap


class WeightedAUC:
    """Per-class AUC under image weights (multiplicities of a resample) without re-sorting:
    each class is sorted once; the AUC of weights w is the Mann-Whitney sum
    sum_i w_i [pos_i] (negative weight below i + tied negative weight / 2) / (P N), the same
    number as ranking the resampled data (tested)."""

    def __init__(self, t: np.ndarray, s: np.ndarray):  # t (N, K) bool, s (N, K)
        self.prepared = []
        for c in range(t.shape[1]):
            order = np.argsort(s[:, c], kind="stable")
            start, end = _tie_bounds(s[order, c][None, :])
            self.prepared.append((order, t[order, c], start[0], end[0]))

    def __call__(self, w: np.ndarray) -> np.ndarray:  # (B, N) weights -> (B, K) AUCs
        out = np.full((w.shape[0], len(self.prepared)), np.nan)
        for c, (order, pos, start, end) in enumerate(self.prepared):
            ws = w[:, order]
            wp = np.where(pos, ws, 0.0)
            cn = np.cumsum(ws - wp, axis=1)
            below = cn[:, start] - np.where(pos, 0.0, ws)[:, start]
            tied = cn[:, end] - below
            mw, nw = wp.sum(axis=1), (ws - wp).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                auc = (wp * (below + 0.5 * tied)).sum(axis=1) / (mw * nw)
            auc[(mw == 0) | (nw == 0)] = np.nan
            out[:, c] = auc
        return out


def bootstrap_ci(targets, scores, *, groups=None, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05, chunk: int = 64) -> dict:
    """Seeded percentile bootstrap CIs of per-class AUC and of the mean AUC of one run.

    Patients are resampled with replacement (``groups``: patient id per image; None makes
    every image its own patient); an image weighs as many times as its patient is drawn.
    Replicates are computed in blocks of ``chunk`` without re-sorting: each class is sorted
    once and a replicate's AUC is the Mann-Whitney sum of its weights (ties halved), so it
    equals ranking the resampled data (tested). A class single-valued in the full set is NaN
    throughout; one single-valued in a replicate is left out of that replicate's mean.

    Returns:
        dict with ``auc_lo``, ``auc_hi`` ((C,)), ``mean_auc_lo``, ``mean_auc_hi``,
        ``mean_auc_se`` (bootstrap SE of the mean AUC) and ``n_boot``.
    """
    if n_boot < 2:
        raise ValueError(f"Expected argument `n_boot` >= 2 but got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"Expected argument `alpha` in (0, 1) but got {alpha}")
    t, s = _as_2d(targets, scores)
    n = t.shape[0]
    gi, ng = group_index(np.arange(n) if groups is None else groups)
    if gi.shape[0] != n:
        raise ValueError(f"Expected one group per image ({n}), got {gi.shape[0]}")
    valid = np.flatnonzero(_valid_mask(t))
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, t.shape[1]), np.nan)
    weighted = WeightedAUC(t[:, valid], s[:, valid])
    for b0 in range(0, n_boot, chunk):
        nb = min(chunk, n_boot - b0)
        draws = rng.multinomial(ng, np.full(ng, 1.0 / ng), size=nb).astype(np.float64)
        reps[b0:b0 + nb, valid] = weighted(draws[:, gi])
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    per_class = np.full((2, t.shape[1]), np.nan)
    means = np.full(n_boot, np.nan)
    if valid.size:
        per_class[:, valid] = np.nanpercentile(reps[:, valid], q, axis=0)
        ok = ~np.isnan(reps[:, valid])
        counts = ok.sum(axis=1)
        sums = np.where(ok, reps[:, valid], 0.0).sum(axis=1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    finite = means[~np.isnan(means)]
    lo, hi = np.percentile(finite, q) if finite.size else (np.nan, np.nan)
    return {
        "auc_lo": per_class[0],
        "auc_hi": per_class[1],
        "mean_auc_lo": float(lo),
        "mean_auc_hi": float(hi),
        "mean_auc_se": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        "n_boot": n_boot,
    }


# --------------------------------------------------------------------------- test ids


def dataset_ids(dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """(image ids, patient ids) of a test dataset's rows in loader order (a test loader does
    not shuffle): what ``ResultsDB.finish`` stores for recomputing the statistics."""
    meta = dataset.metadata
    images = meta["image"].astype(str).to_numpy()
    patients = meta["patient"].to_numpy() if "patient" in meta else None
    return images, patients
