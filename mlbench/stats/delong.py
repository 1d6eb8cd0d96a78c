"""DeLong influence values and patient clustering: which classes are used
(:class:`SparseRule`), per-image influence values (:func:`influence`), their patient-clustered
variance (:func:`clustered_variance`, :func:`clustered_terms`) and a run's
:class:`RunStats`. See :mod:`mlbench.stats` for how the comparison uses them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlbench.stats.metrics import as_2d, group_index, tie_bounds

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

    def check(self, targets, groups, mask=None) -> tuple[list[int], dict[int, str]]:
        """(used class indices, {left-out class: reason}) for a test split; with ``mask``
        (N, C) bool, a class's images and patients are counted over its labelled rows."""
        if mask is None:
            t = np.asarray(targets).astype(bool)
            known = np.ones(t.shape, bool)
        else:
            t, _, known = as_2d(targets, np.zeros(np.shape(mask)), mask)
        gi, _ = group_index(groups)
        used, left = [], {}
        for c in range(t.shape[1]):
            pos, neg = t[:, c] & known[:, c], ~t[:, c] & known[:, c]
            n_pos, n_neg = int(pos.sum()), int(neg.sum())
            if n_pos == 0 or n_neg == 0:
                left[c] = "not estimable (one label value)"
                continue
            p_pat = len(np.unique(gi[pos]))
            n_pat = len(np.unique(gi[neg]))
            if min(n_pos, n_neg) < self.min_images or min(p_pat, n_pat) < self.min_patients:
                left[c] = (f"sparse: {n_pos} positive images of {p_pat} patients "
                           f"(rule: >= {self.min_images} of >= {self.min_patients})")
                continue
            used.append(c)
        return used, left


# --------------------------------------------------------------------------- influence


def influence(targets: np.ndarray, scores: np.ndarray,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUC and per-image DeLong influence values, vectorised over columns.

    With m positives and n negatives in a column, the structural components (DeLong et al.
    1988, midranks for ties) are V10_i = (#neg below + #neg tied / 2) / n for a positive and
    V01_j = (#pos above + #pos tied / 2) / m for a negative; both average to the AUC. The
    influence of an image is its centred component over sqrt(m(m-1)) (positive) or
    sqrt(n(n-1)) (negative), so that the sum of squared influences is DeLong's variance
    S10/m + S01/n and the sum of the differences of two models' influences squared is the
    paired DeLong variance of the difference. One sort per column.

    Args:
        targets: (N, K) bool, every column with both labels (among its labelled rows).
        scores: (N, K) or (N, K * R) (R score sets of the same targets side by side).
        mask: optional (N, K) bool, True where the label is known: a column's AUC and
            influence values are those of its labelled rows alone; a masked-out image has
            influence 0 in that column (so patient sums and clustered variances over all
            images equal those over the labelled ones).

    Returns:
        (auc (K * R,), phi (N, K * R)).
    """
    t = np.asarray(targets, dtype=bool)
    s = np.asarray(scores)
    reps = s.shape[1] // max(t.shape[1], 1)
    if reps * t.shape[1] != s.shape[1] or s.shape[0] != t.shape[0]:
        raise ValueError(f"Expected scores (N, K*R) for targets {t.shape}, got {s.shape}")
    known = None
    if mask is not None:
        known = np.asarray(mask, dtype=bool)
        if known.shape != t.shape:
            raise ValueError(f"Expected `mask` of the targets' shape {t.shape}, got {known.shape}")
        known = np.ascontiguousarray(np.tile(known, (1, reps)).T)
    auc, phi = influence_rows(np.ascontiguousarray(np.tile(t, (1, reps)).T),
                              np.ascontiguousarray(s.T), known)
    return auc, phi.T


def influence_rows(t: np.ndarray, s: np.ndarray,
                   known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`influence` on rows: t (R, N) bool, s (R, N) and optionally known (R, N) bool
    -> (auc (R,), phi (R, N))."""
    if known is not None:
        return _influence_rows_masked(t, s, known)
    n_all = t.shape[1]
    m = t.sum(axis=1, keepdims=True).astype(np.float64)
    n = n_all - m
    order = np.argsort(s, axis=1)
    ss = np.take_along_axis(s, order, 1)
    tp = np.take_along_axis(t, order, 1)
    cp = np.cumsum(tp, axis=1, dtype=np.int32)  # positives at or below, inclusive
    if np.any(ss[:, 1:] == ss[:, :-1]):  # ties: count them by tie group
        start, end = tie_bounds(ss)
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


def _influence_rows_masked(t: np.ndarray, s: np.ndarray,
                           known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`influence_rows` over the labelled entries of each row: positives and
    negatives are counted among ``known`` only (cumulative counts of each, by tie group),
    and an unlabelled entry gets influence 0."""
    pos, neg = t & known, ~t & known
    m = pos.sum(axis=1, keepdims=True).astype(np.float64)
    n = neg.sum(axis=1, keepdims=True).astype(np.float64)
    order = np.argsort(s, axis=1)
    ss = np.take_along_axis(s, order, 1)
    tp, tn = np.take_along_axis(pos, order, 1), np.take_along_axis(neg, order, 1)
    cp = np.cumsum(tp, axis=1, dtype=np.int32)  # labelled positives at or below
    cn = np.cumsum(tn, axis=1, dtype=np.int32)  # labelled negatives at or below
    start, end = tie_bounds(ss)  # ties among all entries; unlabelled ones count 0
    cp_end, cn_end = np.take_along_axis(cp, end, 1), np.take_along_axis(cn, end, 1)
    cp_start = np.take_along_axis(cp, start, 1) - np.take_along_axis(tp, start, 1)
    cn_start = np.take_along_axis(cn, start, 1) - np.take_along_axis(tn, start, 1)
    below = cn_start + 0.5 * (cn_end - cn_start)  # negatives below, ties halved
    above = (m - cp_end) + 0.5 * (cp_end - cp_start)  # positives above, ties halved
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(tp, below / n, np.where(tn, above / m, 0.0))
        auc = v.sum(axis=1, keepdims=True, where=tp) / m
    v = np.where(tp | tn, v - auc, 0.0)
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


def run_stats(targets, scores, classes: list[int], mask=None) -> RunStats:
    """Per-class AUC and class-averaged influence of one run over ``classes``; with
    ``mask`` (N, C) each class over its labelled rows (the mean AUC's influence is still the
    mean of the per-class influences, 0 where a label is missing)."""
    if mask is None:
        t, s = as_2d(targets, scores)
        known = None
    else:
        t, s, known = as_2d(targets, scores, mask)
    if not classes:
        return RunStats(np.full(0, np.nan), np.zeros(t.shape[0]))
    auc, phi = influence(t[:, classes], s[:, classes],
                         None if known is None else known[:, classes])
    return RunStats(auc, phi.mean(axis=1))


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


# --------------------------------------------------------------------------- test ids


def dataset_ids(dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """(image ids, patient ids) of a test dataset's rows in loader order (a test loader does
    not shuffle): what ``ResultsDB.finish`` stores for recomputing the statistics."""
    meta = dataset.metadata
    images = meta["image"].astype(str).to_numpy()
    patients = meta["patient"].to_numpy() if "patient" in meta else None
    return images, patients
