"""Per-run multi-label metrics: per-class AUC/AP, mean AUC, mAP, label-ranking metrics.

Conventions: ``targets`` and ``scores`` are ``(N, C)`` arrays (one column per finding),
``targets`` in {0, 1}. A class whose targets hold a single value (all 0 or all 1) has no
defined AUC: it gets NaN, is left out of every mean, and its index is reported in
``skipped``. scikit-learn is never called on such a class, so it does not warn.

AUC, AP, label ranking average precision and ranking loss come from scikit-learn.
Comparison statistics (DeLong, the patient-clustered bootstrap, Holm) live in
:mod:`mlbench.stats`.
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
    "evaluate_scores",
    "label_ranking",
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


def label_ranking(targets, scores) -> dict:
    """Label-ranking metrics (scikit-learn) over the images with at least one positive and
    one negative label: only those have a ranking to get right (scikit-learn counts an image
    without positives as a perfect ranking, which in ChestX-ray14, where half the images are
    "No Finding", would say more about the labels than the model).

    Returns:
        dict with ``lrap`` (label ranking average precision, higher is better),
        ``ranking_loss`` (fraction of positive/negative pairs ordered wrongly, lower is
        better), both NaN when no image qualifies, and ``n_ranked`` (the images used).
    """
    t, s = _as_2d(targets, scores)
    k = t.sum(axis=1)
    keep = (k > 0) & (k < t.shape[1])
    if not keep.any():
        return {"lrap": float("nan"), "ranking_loss": float("nan"), "n_ranked": 0}
    tk, sk = t[keep].astype(int), s[keep]
    return {"lrap": float(label_ranking_average_precision_score(tk, sk)),
            "ranking_loss": float(label_ranking_loss(tk, sk)),
            "n_ranked": int(keep.sum())}


def __getattr__(name: str):
    # the bootstrap moved to mlbench.stats (patient-clustered); old imports keep working
    if name == "bootstrap_ci":
        from mlbench.stats import bootstrap_ci

        return bootstrap_ci
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
