"""Stratified and per-class results (issue 25 item 4): per-class Δ with the leaderboard's two
variance components, and AUC within strata of the test images (view, number of findings).

Per-class Δ of a contrast A - B: for each class c of the means, the paired comparison of the
class's AUC on the matched seeds (:func:`mlbench.stats.compare` on one-class
:class:`RunStats`: the class's DeLong influence values), its own seed term (the class's
paired differences, :func:`mlbench.stats.seed_terms`, as every leaderboard comparison);
``B = None`` is chance (the class's AUC - 0.5, :func:`mlbench.stats.mean_ci`). A class is a
win when its CI lies above 0, a loss when below (95% CIs, not adjusted over the classes).

Strata, per class c and run, as masks of the rows a class's AUC is computed on:

* view ``v`` (PA / AP): the images of that view (both labels), AUC within the view;
* positives by label count ``k`` (1, >= 2 findings): the positives of c whose image has k
  findings, against every negative of c;
* negatives by label count (0 = no finding, >= 1 other finding): every positive of c, against
  the negatives of c with that many findings.

Each positive-side (negative-side) split is an exact decomposition: the class's AUC is the
mean of its strata's AUCs weighted by their share of the positives (negatives). A stratum's
mean AUC is over the classes of the means with >= ``min_images`` positives and negatives in
it (NaN where none has); no CI (a description, not a test).

One run's strata do not depend on the classes of its block: :func:`stratum_table` holds, per
stratum, every class's AUC and its positives and negatives there (what the results store
keeps per run, ``ResultsDB.store_strata``), and :func:`table_mean` takes the mean over a
block's classes from it: the numbers of :func:`stratified_auc`, without the scores.
"""

from __future__ import annotations

import numpy as np

from mlbench.stats.compare import compare, mean_ci, seed_terms
from mlbench.stats.delong import RunStats, influence

STRATA = ("view PA", "view AP", "pos 1 finding", "pos >=2 findings", "neg no finding",
          "neg >=1 finding")


def class_stats(targets, scores, classes: list[int]) -> list[RunStats]:
    """One run's :class:`RunStats` per class of ``classes`` (its AUC and influence values)."""
    t = np.asarray(targets, dtype=bool)[:, classes]
    auc, phi = influence(t, np.asarray(scores, dtype=np.float64)[:, classes])
    return [RunStats(auc[k:k + 1], phi[:, k]) for k in range(len(classes))]


def per_class_delta(a: list[list[RunStats]], b: list[list[RunStats]] | None, group_idx,
                    n_groups: int, alpha: float = 0.05) -> list:
    """Per-class comparisons of a contrast.

    Args:
        a, b: per matched seed, the runs' :func:`class_stats` (same classes, same order);
            ``b`` None: against chance (AUC 0.5).

    Returns:
        One :class:`mlbench.stats.Comparison` per class (Δ, CI, p; for chance, shifted by
        -0.5).
    """
    n_cls = len(a[0]) if a else 0
    if b is None:
        samples = [np.array([run[k].mean_auc for run in a]) for k in range(n_cls)]
    else:
        samples = [np.array([x[k].mean_auc - y[k].mean_auc for x, y in zip(a, b, strict=True)])
                   for k in range(n_cls)]
    terms = seed_terms(samples)
    out = []
    for k in range(n_cls):
        if b is None:
            c = mean_ci([run[k] for run in a], group_idx, n_groups, alpha=alpha, seed=terms[k])
            c.delta, c.ci_lo, c.ci_hi = c.delta - 0.5, c.ci_lo - 0.5, c.ci_hi - 0.5
        else:
            c = compare([run[k] for run in a], [run[k] for run in b], group_idx, n_groups,
                        alpha=alpha, seed=terms[k])
        out.append(c)
    return out


def win_loss(comparisons) -> dict:
    """Counts over the classes: ``wins`` / ``losses`` (CI above / below 0), ``ties`` (CI
    across 0 or none), ``above`` / ``below`` (by the sign of Δ alone)."""
    lo = np.array([c.ci_lo for c in comparisons], float)
    hi = np.array([c.ci_hi for c in comparisons], float)
    d = np.array([c.delta for c in comparisons], float)
    wins, losses = int(np.sum(lo > 0)), int(np.sum(hi < 0))
    return {"wins": wins, "losses": losses, "ties": len(d) - wins - losses,
            "above": int(np.sum(d > 0)), "below": int(np.sum(d < 0))}


def stratum_masks(targets, views=None, count_columns=None) -> dict:
    """name -> (N, C) bool mask of the rows each class's AUC uses in that stratum (module
    docstring). ``views``: (N,) view per image (None: no view strata); ``count_columns``:
    the columns that count as findings (default all)."""
    t = np.asarray(targets).astype(bool)
    cols = list(range(t.shape[1])) if count_columns is None else list(count_columns)
    n_find = t[:, cols].sum(axis=1)
    out = {}
    if views is not None:
        v = np.asarray(views).astype(str)
        for name in ("PA", "AP"):
            out[f"view {name}"] = np.repeat((v == name)[:, None], t.shape[1], axis=1)
    pos, neg = t, ~t
    out["pos 1 finding"] = neg | (pos & (n_find == 1)[:, None])
    out["pos >=2 findings"] = neg | (pos & (n_find >= 2)[:, None])
    out["neg no finding"] = pos | (neg & (n_find == 0)[:, None])
    out["neg >=1 finding"] = pos | (neg & (n_find >= 1)[:, None])
    return out


def stratified_auc(targets, scores, masks: dict, classes: list[int],
                   min_images: int = 10) -> dict:
    """name -> mean over ``classes`` of the class's AUC on its stratum rows, over the classes
    with >= ``min_images`` positives and negatives there (NaN: none)."""
    t = np.asarray(targets).astype(bool)[:, classes]
    s = np.asarray(scores, dtype=np.float64)[:, classes]
    out = {}
    for name, mask in masks.items():
        m = np.asarray(mask, bool)[:, classes]
        n_pos, n_neg = (t & m).sum(axis=0), (~t & m).sum(axis=0)
        ok = (n_pos >= min_images) & (n_neg >= min_images)
        if not ok.any():
            out[name] = float("nan")
            continue
        auc, _ = influence(t[:, ok], s[:, ok], m[:, ok])
        out[name] = float(np.mean(auc))
    return out


def stratum_table(targets, scores, masks: dict, label_mask=None) -> dict:
    """name -> {"auc", "pos", "neg"}: per class (C,), its AUC on its rows of the stratum (NaN
    where it has no positive or no negative there) and its positives and negatives there.
    ``label_mask``: (N, C) True where a label is known (a named test set's); unknown labels
    are in no stratum."""
    t = np.asarray(targets).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    known = None if label_mask is None else np.asarray(label_mask, bool)
    out = {}
    for name, mask in masks.items():
        m = np.asarray(mask, bool) if known is None else np.asarray(mask, bool) & known
        n_pos, n_neg = (t & m).sum(axis=0), (~t & m).sum(axis=0)
        auc = np.full(t.shape[1], np.nan)
        ok = (n_pos > 0) & (n_neg > 0)
        if ok.any():
            auc[ok] = influence(t[:, ok], s[:, ok], m[:, ok])[0]
        out[name] = {"auc": auc, "pos": n_pos.astype(np.int64), "neg": n_neg.astype(np.int64)}
    return out


def table_mean(table: dict, classes: list[int], min_images: int = 10) -> dict:
    """name -> mean over ``classes`` of the AUCs of :func:`stratum_table`, over the classes
    with >= ``min_images`` positives and negatives in the stratum (NaN: none): the numbers
    of :func:`stratified_auc` (tested)."""
    out = {}
    idx = np.asarray(classes, dtype=np.int64)
    for name, entry in table.items():
        ok = (entry["pos"][idx] >= min_images) & (entry["neg"][idx] >= min_images)
        out[name] = float(np.mean(entry["auc"][idx][ok])) if ok.any() else float("nan")
    return out


def pack_table(table: dict) -> np.ndarray:
    """A :func:`stratum_table` as one (3, S, C) float64 array (auc, pos, neg; strata in the
    table's order), for the results store; :func:`unpack_table` inverts it."""
    return np.stack([np.stack([np.asarray(e[k], np.float64) for e in table.values()])
                     for k in ("auc", "pos", "neg")]) if table else np.zeros((3, 0, 0))


def unpack_table(names: list[str], arr: np.ndarray) -> dict:
    arr = np.asarray(arr, np.float64)
    return {name: {"auc": arr[0, i], "pos": arr[1, i].astype(np.int64),
                   "neg": arr[2, i].astype(np.int64)} for i, name in enumerate(names)}


TABLE_VERSION = 1  # bump when a stratum's definition changes: stored tables are then stale


def table_key(digest: str) -> str:
    """What a stored stratum table is valid for: the run's stored predictions and test ids
    (``digest``: ``ResultsDB.prediction_digest``), the strata and their definitions."""
    import hashlib

    return hashlib.sha256(f"{digest}|{'|'.join(STRATA)}|{TABLE_VERSION}".encode()).hexdigest()[:32]


def run_table(targets, scores, views, findings: list[str], label_mask=None) -> dict:
    """One run's :func:`stratum_table`: the strata of :data:`STRATA` (view strata only with
    ``views``), the number of findings of an image counted over ``findings`` but a "No
    Finding" column."""
    counted = [c for c, f in enumerate(findings) if f.replace("_", " ").lower() != "no finding"]
    masks = stratum_masks(targets, views, counted)
    return stratum_table(targets, scores, masks, label_mask)
