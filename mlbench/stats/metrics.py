"""Per-run multi-label metrics: per-class AUC/AP, mean AUC, mAP, label-ranking metrics.

Conventions: ``targets`` and ``scores`` are ``(N, C)`` arrays (one column per finding),
``targets`` in {0, 1}. A class whose targets hold a single value (all 0 or all 1) has no
defined AUC: it gets NaN, is left out of every mean, and its index is reported in
``skipped``. scikit-learn is never called on such a class, so it does not warn.

Missing labels: every function takes an optional ``mask`` (N, C) bool, True where the label
is known and used (a test set's uncertain or unmentioned labels under an "ignore" policy,
a finding a test set has for some images only: ``mlbench.data.testsets``). A masked-out entry
is left out of its class -- it is neither a positive nor a negative, its target may be
anything (NaN included) -- so each class is computed on its own labelled rows, exactly as if
the others were not there (tested against scikit-learn on the subset). A class's "single
value" is judged on its labelled rows. Without a mask, targets must all be 0 or 1.

AUC, AP, label ranking average precision and ranking loss come from scikit-learn.
The per-run patient-clustered bootstrap CI (``bootstrap_ci``) is here too, below the
comparison statistics (``delong``, ``compare``), and :func:`metric_records`: one run's
metrics as the rows the results store keeps.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    label_ranking_average_precision_score,
    label_ranking_loss,
    roc_auc_score,
)

__all__ = [
    "WeightedAUC",
    "bootstrap_ci",
    "evaluate_scores",
    "group_index",
    "label_ranking",
    "mean_auc",
    "metric_records",
    "per_class_ap",
    "per_class_auc",
    "skipped_classes",
]


def as_2d(targets, scores, mask=None):
    """(targets bool (N, C), scores float64 (N, C)), or with ``mask`` given also the mask
    (bool (N, C)) as a third element; masked-out targets are not checked (set to False)."""
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
    known = None
    if mask is not None:
        known = np.asarray(mask)
        known = known[:, None] if known.ndim == 1 else known
        if known.shape != t.shape:
            raise ValueError(f"Expected `mask` of the targets' shape {t.shape}, "
                             f"got {np.shape(mask)}")
        if known.dtype != bool:
            raise ValueError(f"Expected a bool `mask` (True: label known), got {known.dtype}")
        t = np.where(known, t, 0)
    t = t.astype(bool) if t.dtype == bool else t
    if not np.isin(t, (0, 1)).all():
        hint = (" (NaN marks a missing label: pass mask=~np.isnan(targets))"
                if mask is None and np.isnan(np.asarray(t, dtype=np.float64)).any() else "")
        raise ValueError("Expected `targets` in {0, 1}" + hint)
    if mask is None:
        return t.astype(bool), s
    return t.astype(bool), s, known


def _valid_mask(t: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """(C,) bool: the class has both a positive and a negative (among its labelled rows)."""
    if known is None:
        pos = t.sum(axis=0)
        return (pos > 0) & (pos < t.shape[0])
    return (t & known).any(axis=0) & (~t & known).any(axis=0)


def skipped_classes(targets, mask=None) -> list[int]:
    """Indices of the classes whose (labelled) targets hold a single value (AUC undefined)."""
    if mask is None:
        t = np.asarray(targets).reshape(len(targets), -1).astype(bool)
        return [int(c) for c in np.flatnonzero(~_valid_mask(t))]
    t, _, known = as_2d(targets, np.zeros(np.shape(mask)), mask)
    return [int(c) for c in np.flatnonzero(~_valid_mask(t, known))]


def _per_class(fn, targets, scores, mask=None) -> np.ndarray:
    if mask is None:
        t, s = as_2d(targets, scores)
        known = None
    else:
        t, s, known = as_2d(targets, scores, mask)
    out = np.full(t.shape[1], np.nan)
    for c in np.flatnonzero(_valid_mask(t, known)):
        rows = slice(None) if known is None else known[:, c]
        out[c] = fn(t[rows, c], s[rows, c])
    return out


def per_class_auc(targets, scores, mask=None) -> np.ndarray:
    """ROC AUC per class (scikit-learn) over its labelled rows; NaN for single-valued
    classes. Returns (C,)."""
    return _per_class(roc_auc_score, targets, scores, mask)


def per_class_ap(targets, scores, mask=None) -> np.ndarray:
    """Average precision per class (scikit-learn) over its labelled rows; NaN for
    single-valued classes. Returns (C,)."""
    return _per_class(average_precision_score, targets, scores, mask)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def mean_auc(targets, scores, mask=None) -> float:
    """Mean ROC AUC over the classes where it is defined (NaN if none is)."""
    return _nanmean(per_class_auc(targets, scores, mask))


def evaluate_scores(targets, scores, mask=None) -> dict:
    """All point metrics at once (``mask``: see the module docstring).

    Returns:
        dict with ``auc`` and ``ap`` ((C,) arrays, NaN where skipped), ``mean_auc``,
        ``mean_ap`` (floats over the defined classes) and ``skipped`` (list of class indices).
    """
    auc = per_class_auc(targets, scores, mask)
    ap = per_class_ap(targets, scores, mask)
    return {
        "auc": auc,
        "ap": ap,
        "mean_auc": _nanmean(auc),
        "mean_ap": _nanmean(ap),
        "skipped": [int(c) for c in np.flatnonzero(np.isnan(auc))],
    }


def label_ranking(targets, scores, mask=None) -> dict:
    """Label-ranking metrics (scikit-learn) over the images with at least one positive and
    one negative label: only those have a ranking to get right (scikit-learn counts an image
    without positives as a perfect ranking, which in ChestX-ray14, where half the images are
    "No Finding", would say more about the labels than the model).

    With ``mask``, an image is ranked over its labelled findings only (its known positives
    among its known labels): images are grouped by their pattern of labelled findings and
    scikit-learn is called on each group's columns; both metrics are means over images, so the
    groups' values weighted by their sizes are the per-image means (tested).

    Returns:
        dict with ``lrap`` (label ranking average precision, higher is better),
        ``ranking_loss`` (fraction of positive/negative pairs ordered wrongly, lower is
        better), both NaN when no image qualifies, and ``n_ranked`` (the images used).
    """
    if mask is None:
        t, s = as_2d(targets, scores)
        known = np.ones(t.shape, bool)
    else:
        t, s, known = as_2d(targets, scores, mask)
    k = (t & known).sum(axis=1)
    keep = (k > 0) & (k < known.sum(axis=1))
    if not keep.any():
        return {"lrap": float("nan"), "ranking_loss": float("nan"), "n_ranked": 0}
    patterns, group = np.unique(known[keep], axis=0, return_inverse=True)
    group = group.reshape(-1)
    tk, sk = t[keep].astype(int), s[keep]
    if len(patterns) == 1:  # one pattern (always so without a mask): one call, as before
        cols = patterns[0]
        return {"lrap": float(label_ranking_average_precision_score(tk[:, cols], sk[:, cols])),
                "ranking_loss": float(label_ranking_loss(tk[:, cols], sk[:, cols])),
                "n_ranked": int(keep.sum())}
    lrap = loss = 0.0
    for g, cols in enumerate(patterns):
        rows = group == g
        lrap += rows.sum() * label_ranking_average_precision_score(tk[rows][:, cols],
                                                                   sk[rows][:, cols])
        loss += rows.sum() * label_ranking_loss(tk[rows][:, cols], sk[rows][:, cols])
    n = int(keep.sum())
    return {"lrap": float(lrap / n), "ranking_loss": float(loss / n), "n_ranked": n}


# --------------------------------------------------------------------------- bootstrap
# the per-run patient-clustered bootstrap CI


def group_index(groups) -> tuple[np.ndarray, int]:
    """Patient ids (any hashable values) -> (dense index (N,), number of patients)."""
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    inv = inv.reshape(-1)
    return inv, int(inv.max()) + 1 if inv.size else 0


def tie_bounds(ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


class WeightedAUC:
    """Per-class AUC under image weights (multiplicities of a resample) without re-sorting:
    each class is sorted once; the AUC of weights w is the Mann-Whitney sum
    sum_i w_i [pos_i] (negative weight below i + tied negative weight / 2) / (P N), the same
    number as ranking the resampled data (tested). With ``known`` (N, K) bool, class k uses
    only its labelled rows (the others weigh nothing in it, whatever their weight)."""

    def __init__(self, t: np.ndarray, s: np.ndarray, known: np.ndarray | None = None):
        # t (N, K) bool, s (N, K), known (N, K) bool or None
        self.prepared = []
        for c in range(t.shape[1]):
            rows = np.arange(t.shape[0]) if known is None else np.flatnonzero(known[:, c])
            order = rows[np.argsort(s[rows, c], kind="stable")]
            start, end = tie_bounds(s[order, c][None, :])
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


def bootstrap_ci(targets, scores, *, groups=None, mask=None, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05, chunk: int = 64) -> dict:
    """Seeded percentile bootstrap CIs of per-class AUC and of the mean AUC of one run.

    Patients are resampled with replacement (``groups``: patient id per image; None makes
    every image its own patient); an image weighs as many times as its patient is drawn.
    Replicates are computed in blocks of ``chunk`` without re-sorting: each class is sorted
    once and a replicate's AUC is the Mann-Whitney sum of its weights (ties halved), so it
    equals ranking the resampled data (tested). A class single-valued in the full set is NaN
    throughout; one single-valued in a replicate is left out of that replicate's mean.
    ``mask`` (N, C): each class over its labelled rows; patients are drawn from all images'
    patients, so a patient without a label for a class weighs nothing in that class.

    Returns:
        dict with ``auc_lo``, ``auc_hi`` ((C,)), ``mean_auc_lo``, ``mean_auc_hi``,
        ``mean_auc_se`` (bootstrap SE of the mean AUC) and ``n_boot``.
    """
    if n_boot < 2:
        raise ValueError(f"Expected argument `n_boot` >= 2 but got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"Expected argument `alpha` in (0, 1) but got {alpha}")
    if mask is None:
        t, s = as_2d(targets, scores)
        known = None
    else:
        t, s, known = as_2d(targets, scores, mask)
    n = t.shape[0]
    gi, ng = group_index(np.arange(n) if groups is None else groups)
    if gi.shape[0] != n:
        raise ValueError(f"Expected one group per image ({n}), got {gi.shape[0]}")
    valid = np.flatnonzero(_valid_mask(t, known))
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, t.shape[1]), np.nan)
    weighted = WeightedAUC(t[:, valid], s[:, valid], None if known is None else known[:, valid])
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


def metric_records(targets: np.ndarray, scores: np.ndarray, findings, *, n_boot: int,
                   seed: int, groups=None, mask=None) -> list[tuple]:
    """Rows for ``ResultsDB.finish``: per-class auc/ap with CIs, mean_auc with CI, map,
    label ranking average precision (lrap) and ranking loss.

    Args:
        targets: (N, C) test labels. scores: (N, C) test probabilities.
        findings: the C class names.
        n_boot: bootstrap replicates (0 or 1: no CIs).
        seed: seed of the bootstrap.
        groups: (N,) patient ids: the bootstrap resamples patients (None: images).
        mask: optional (N, C) bool, True where a label is known (a named test set's missing
            labels are skipped per class).
    """
    point = evaluate_scores(targets, scores, mask)
    nan = float("nan")
    if n_boot >= 2:
        ci = bootstrap_ci(targets, scores, groups=groups, mask=mask, n_boot=n_boot, seed=seed)
    else:
        ci = {"auc_lo": [nan] * len(findings), "auc_hi": [nan] * len(findings),
              "mean_auc_lo": nan, "mean_auc_hi": nan}
    rows = [("mean_auc", "", point["mean_auc"], ci["mean_auc_lo"], ci["mean_auc_hi"]),
            ("map", "", point["mean_ap"], None, None)]
    ranking = label_ranking(targets, scores, mask)
    rows += [("lrap", "", ranking["lrap"], None, None),
             ("ranking_loss", "", ranking["ranking_loss"], None, None)]
    for c, f in enumerate(findings):
        rows.append(("auc", f, point["auc"][c], ci["auc_lo"][c], ci["auc_hi"][c]))
        rows.append(("ap", f, point["ap"][c], None, None))
    return rows
