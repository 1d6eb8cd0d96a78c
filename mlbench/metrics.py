"""Multi-label classification metrics: per-class AUC/AP, bootstrap CIs, paired DeLong tests.

Conventions: ``targets`` and ``scores`` are ``(N, C)`` arrays (one column per finding),
``targets`` in {0, 1}. A class whose targets hold a single value (all 0 or all 1) has no
defined AUC: it gets NaN, is left out of every mean, and its index is reported in
``skipped``. scikit-learn is never called on such a class, so it does not warn.

AUC and AP come from scikit-learn. The bootstrap and DeLong computations use the
Mann-Whitney form of the AUC over midranks, which is the same number as scikit-learn's
``roc_auc_score`` (tested), vectorised over classes so that 1000 bootstrap replicates of a
25k x 14 test set take seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import ndtr
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "DeLongResult",
    "bootstrap_ci",
    "delong_mean_test",
    "delong_test",
    "evaluate_scores",
    "mean_auc",
    "per_class_ap",
    "per_class_auc",
    "skipped_classes",
]


def _as_2d(targets, scores) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(targets)
    s = np.asarray(scores, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if t.shape != s.shape or t.ndim != 2:
        raise ValueError(
            f"Expected `targets` and `scores` of the same shape (N, C) or (N,), "
            f"got {np.shape(targets)} and {np.shape(scores)}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("Expected finite `scores`, got NaN or inf")
    t = t.astype(bool) if t.dtype == bool else t
    if not np.isin(t, (0, 1)).all():
        raise ValueError("Expected `targets` in {0, 1}")
    return t.astype(bool), s


def _valid_mask(t: np.ndarray) -> np.ndarray:
    """(C,) bool: the class has both a positive and a negative."""
    pos = t.sum(axis=0)
    return (pos > 0) & (pos < t.shape[0])


def skipped_classes(targets) -> list[int]:
    """Indices of the classes whose targets hold a single value (AUC undefined)."""
    t = np.asarray(targets).reshape(len(targets), -1).astype(bool)
    return [int(c) for c in np.flatnonzero(~_valid_mask(t))]


def _per_class(fn, targets, scores) -> np.ndarray:
    t, s = _as_2d(targets, scores)
    out = np.full(t.shape[1], np.nan)
    for c in np.flatnonzero(_valid_mask(t)):
        out[c] = fn(t[:, c], s[:, c])
    return out


def per_class_auc(targets, scores) -> np.ndarray:
    """ROC AUC per class (scikit-learn); NaN for single-valued classes. Returns (C,)."""
    return _per_class(roc_auc_score, targets, scores)


def per_class_ap(targets, scores) -> np.ndarray:
    """Average precision per class (scikit-learn); NaN for single-valued classes. Returns (C,)."""
    return _per_class(average_precision_score, targets, scores)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def mean_auc(targets, scores) -> float:
    """Mean ROC AUC over the classes where it is defined (NaN if none is)."""
    return _nanmean(per_class_auc(targets, scores))


def evaluate_scores(targets, scores) -> dict:
    """All point metrics at once.

    Returns:
        dict with ``auc`` and ``ap`` ((C,) arrays, NaN where skipped), ``mean_auc``,
        ``mean_ap`` (floats over the defined classes) and ``skipped`` (list of class indices).
    """
    auc = per_class_auc(targets, scores)
    ap = per_class_ap(targets, scores)
    return {
        "auc": auc,
        "ap": ap,
        "mean_auc": _nanmean(auc),
        "mean_ap": _nanmean(ap),
        "skipped": [int(c) for c in np.flatnonzero(np.isnan(auc))],
    }


# --------------------------------------------------------------------------- fast AUC


def _fast_auc(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per column via midranks. t (N, C) bool, s (N, C). Returns (C,), NaN if undefined."""
    m = t.sum(axis=0).astype(np.float64)
    n = t.shape[0] - m
    ranks = rankdata(s, axis=0)  # midranks: ties count 1/2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * t).sum(axis=0) - m * (m + 1) / 2) / (m * n)
    auc[(m == 0) | (n == 0)] = np.nan
    return auc


class _BootstrapAUC:
    """Per-class AUC of bootstrap resamples without re-sorting (O(N*C) per replicate).

    The scores of each class are sorted once and grouped into runs of tied values. A
    resample is a vector of multiplicities w (N,); the AUC of the resample is
    sum over tie groups g of P_g * (N_below_g + N_g / 2) / (P * N), where P_g and N_g are the
    positive and negative weight in group g -- the Mann-Whitney form with midranks, so
    identical to ranking the resampled data (tested).
    """

    def __init__(self, t: np.ndarray, s: np.ndarray):  # t (N, K) bool, s (N, K)
        n, k = t.shape
        self.order = np.argsort(s, axis=0, kind="stable")  # (N, K)
        ss = np.take_along_axis(s, self.order, 0)
        self.pos = np.take_along_axis(t, self.order, 0)  # (N, K) bool, sorted by score
        new = np.ones((n, k), dtype=bool)
        new[1:] = ss[1:] != ss[:-1]
        # tie-group id, offset so that class c owns ids [c*N, (c+1)*N)
        self.gid = ((np.cumsum(new, axis=0) - 1) + np.arange(k) * n).ravel()
        self.shape = (k, n)

    def __call__(self, w: np.ndarray) -> np.ndarray:  # (N,) multiplicities -> (K,) AUCs
        ws = w[self.order]  # (N, K)
        size = self.shape[0] * self.shape[1]
        gp = np.bincount(self.gid, (ws * self.pos).ravel(), size).reshape(self.shape)
        gn = np.bincount(self.gid, (ws * ~self.pos).ravel(), size).reshape(self.shape)
        below = np.cumsum(gn, axis=1) - gn  # negative weight strictly below each group
        m, n = gp.sum(axis=1), gn.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (gp * (below + 0.5 * gn)).sum(axis=1) / (m * n)
        auc[(m == 0) | (n == 0)] = np.nan
        return auc


def bootstrap_ci(
    targets,
    scores,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Seeded percentile bootstrap CIs for per-class AUC and for the mean AUC.

    Samples (rows) are resampled with replacement; each replicate recomputes every class's
    AUC. A class that is single-valued in the full set is NaN throughout; one that is
    single-valued in a replicate is left out of that replicate (per class) and of its mean.

    Args:
        targets: (N, C) in {0, 1}.
        scores: (N, C).
        n_boot: number of bootstrap replicates.
        seed: seed of the resampling (numpy Generator); same seed, same CIs.
        alpha: 1 - confidence level.

    Returns:
        dict with ``auc_lo``, ``auc_hi`` ((C,) arrays), ``mean_auc_lo``, ``mean_auc_hi``,
        ``mean_auc_se`` (bootstrap standard error of the mean AUC) and ``n_boot``.
    """
    if n_boot < 2:
        raise ValueError(f"Expected argument `n_boot` >= 2 but got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"Expected argument `alpha` in (0, 1) but got {alpha}")
    t, s = _as_2d(targets, scores)
    valid = _valid_mask(t)
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, t.shape[1]), np.nan)
    n = t.shape[0]
    boot_auc = _BootstrapAUC(t[:, valid], s[:, valid]) if valid.any() else None
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        if boot_auc is not None:
            reps[b, valid] = boot_auc(np.bincount(idx, minlength=n).astype(np.float64))
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    per_class = np.full((2, t.shape[1]), np.nan)
    means = np.full(n_boot, np.nan)
    if valid.any():
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


# --------------------------------------------------------------------------- DeLong


@dataclass
class DeLongResult:
    """Paired DeLong test of AUC(a) - AUC(b) on the same samples.

    ``se`` is the standard error of ``diff``; ``z = diff / se``; ``p_value`` two-sided.
    Identical predictions give ``diff = 0``, ``se = 0``, ``z = 0``, ``p_value = 1``.
    ``skipped`` lists classes left out (single-valued targets), ``classes`` those used.
    """

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float
    skipped: list[int] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _influence(t: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray]:
    """AUC and per-sample DeLong influence values of one class (Sun & Xu 2014 midranks).

    With m positives X and n negatives Y, the structural components are
    V10_i = (Tz_i - Tx_i) / n for positives and V01_j = 1 - (Tz_j - Ty_j) / m for negatives,
    where Tz are midranks in the pooled sample and Tx / Ty midranks within each group
    (O(N log N)). Both average to the AUC. The influence value of a sample is its centred
    component scaled by 1/sqrt(m(m-1)) (positives) or 1/sqrt(n(n-1)) (negatives), so that
    the sum of squared influences is DeLong's variance S10/m + S01/n.

    Args:
        t: (N,) bool. s: (N,) scores.

    Returns:
        (auc, phi) with phi (N,).
    """
    pos, neg = t, ~t
    m, n = int(pos.sum()), int(neg.sum())
    tz = rankdata(s)
    phi = np.empty(s.shape[0])
    v10 = (tz[pos] - rankdata(s[pos])) / n
    v01 = 1.0 - (tz[neg] - rankdata(s[neg])) / m
    auc = float(v10.mean())
    # m or n == 1: the within-group variance is undefined (0/0); DeLong's estimate uses 0.
    phi[pos] = (v10 - auc) / np.sqrt(max(m * (m - 1), 1))
    phi[neg] = (v01 - auc) / np.sqrt(max(n * (n - 1), 1))
    return auc, phi


def _paired_result(auc_a, auc_b, psi, skipped, classes) -> DeLongResult:
    diff = float(auc_a - auc_b)
    se = float(np.sqrt(np.sum(psi**2)))
    if se > 0:
        z = diff / se
    else:  # no variability: identical predictions (diff 0) or a degenerate case
        z = 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
    p = float(2 * ndtr(-abs(z)))
    return DeLongResult(float(auc_a), float(auc_b), diff, se, float(z), p, skipped, classes)


def delong_test(targets, scores_a, scores_b) -> DeLongResult:
    """Paired DeLong test for one class (fast midrank algorithm, Sun & Xu 2014).

    Args:
        targets: (N,) in {0, 1}.
        scores_a, scores_b: (N,) scores of two models on the same samples.

    Returns:
        DeLongResult; all NaN (with ``skipped=[0]``) if ``targets`` is single-valued.
    """
    t, sa = _as_2d(targets, scores_a)
    _, sb = _as_2d(targets, scores_b)
    if t.shape[1] != 1:
        raise ValueError(f"Expected 1-D `targets` for delong_test, got shape {np.shape(targets)}; "
                         "use delong_mean_test for (N, C)")
    return delong_mean_test(t, sa, sb)


def delong_mean_test(targets, scores_a, scores_b) -> DeLongResult:
    """Paired DeLong-type test of the difference in mean AUC over classes (multi-label).

    Method: the mean AUC difference D = (1/K) sum_c (AUC_c(a) - AUC_c(b)) over the K classes
    with both labels present is, to first order, a sum of independent per-sample terms.
    Each sample k has a DeLong influence value phi_c(k) for every class (see
    :func:`_influence`: its centred structural component, as a positive or a negative of
    class c). Its influence on D is psi(k) = (1/K) sum_c (phi_c^a(k) - phi_c^b(k)), and
    Var(D) = sum_k psi(k)^2. Because the same samples enter every class, the cross-class
    covariances (co-occurring findings, shared images) are included, not assumed zero.
    With K = 1 this is exactly the single-class DeLong variance.

    Args:
        targets: (N, C) in {0, 1}.
        scores_a, scores_b: (N, C).

    Returns:
        DeLongResult with ``auc_a``/``auc_b`` the mean AUCs over the used classes.
    """
    t, sa = _as_2d(targets, scores_a)
    _, sb = _as_2d(targets, scores_b)
    if sa.shape != sb.shape:
        raise ValueError(f"Expected `scores_a` and `scores_b` of one shape, got {sa.shape} and {sb.shape}")
    valid = _valid_mask(t)
    classes = [int(c) for c in np.flatnonzero(valid)]
    skipped = [int(c) for c in np.flatnonzero(~valid)]
    if not classes:
        nan = float("nan")
        return DeLongResult(nan, nan, nan, nan, nan, nan, skipped, classes)
    psi = np.zeros(t.shape[0])
    aucs = np.zeros((2, len(classes)))
    for i, c in enumerate(classes):
        aucs[0, i], phi_a = _influence(t[:, c], sa[:, c])
        aucs[1, i], phi_b = _influence(t[:, c], sb[:, c])
        psi += phi_a - phi_b
    psi /= len(classes)
    return _paired_result(aucs[0].mean(), aucs[1].mean(), psi, skipped, classes)
