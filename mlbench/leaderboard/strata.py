"""Per-class and stratified results of the leaderboard's blocks (issue 25 item 4; the math:
:mod:`mlbench.stats.strata`).

Per block (backbone, head, setup):

* each primary contrast's per-class Δ with its CI (seeds x patient clusters) and its class-wise
  win / loss counts;
* per loss: the mean AUC with and without the sparsest class of the means (fewest test
  positives), and Δ vs the reference both ways (point estimates on the matched seeds): does a
  ranking hinge on one sparse class?
* per loss: validation mean AUC (the kept epoch's, every class estimable there) beside the
  test mean AUC, with each one's rank: the settings are chosen on validation, whose mix of
  views and findings differs from the test split's;
* per loss: mean AUC by view (PA / AP) and by label count, mean over seeds.

Each run's strata are its stratum table (:func:`mlbench.stats.strata.run_table`: per stratum
and class the AUC and the counts), stored by the driver in ``results.db`` after scoring
(``strata``, keyed by a fingerprint of the stored predictions and test ids) and computed from
the stored scores where none matches; the block's mean over its classes is taken from it.
Views are read from the dataset's label table (the run config's ``dataset.root``) by the
stored test image ids; where it is not readable the view strata are left out with a note. The number of findings of an image is its count of positive
targets (a "No Finding" column does not count).
"""

from __future__ import annotations

import math

import numpy as np

from mlbench.stats import group_index
from mlbench.stats.strata import (
    STRATA,
    class_stats,
    per_class_delta,
    run_table,
    table_key,
    table_mean,
    unpack_table,
    win_loss,
)
from mlbench.suite import CHANCE, val_aucs

NOTE = (
    "Strata: per class, AUC on a subset of the test rows, then the mean over the classes of "
    "the means with >= 10 positives and negatives in the subset (mean over seeds; no CI). "
    "view PA / AP: the images of that view; pos 1 / pos >=2: the class's positives whose image "
    "has 1 / >= 2 findings against all its negatives; neg no finding / neg >=1: all its "
    "positives against its negatives with no finding / >= 1 other finding (each pair is an "
    "exact split of the class's AUC, weighted by the positives' / negatives' shares). "
    "w/o sparsest: the mean without the class of the means with the fewest test positives. "
    "val: validation mean AUC of the kept epoch (every class estimable there; what tuning "
    "selects on). Per-class Δ: "
    "the leaderboard's comparison on one class (seeds x patients, the class's own seed "
    "term); win / loss: its 95% CI above / below 0, not adjusted over the classes.")


def compute(db, blocks, findings: list[str], contrasts: list[dict], reference: str,
            alpha: float = 0.05, many_setups: bool = False) -> list[dict]:
    """One entry per block with statistics: ``where``, ``losses`` (rows per loss),
    ``per_class`` (rows per primary contrast and class), ``wins`` (per contrast), ``notes``.

    Each run's strata come from its stored stratum table when that is of its stored
    predictions and test ids (the driver stores one per run and test set after scoring,
    ``mlbench.driver.testsets.store_strata``); otherwise they are computed from the stored
    scores, by the same function (:func:`mlbench.stats.strata.run_table`)."""
    out = []
    for block in blocks:
        if not block.classes or not block.stats or block.targets is None:
            continue
        where = " / ".join(block.key if many_setups else block.key[:2])
        entry = {"where": where, "losses": [], "per_class": [], "wins": [], "notes": []}
        names = [findings[c] if c < len(findings) else str(c) for c in range(block.targets.shape[1])]
        tables, notes = _tables(db, block, names)
        entry["notes"] += [f"{where}: {n}" for n in notes]
        scores = _scores(db, block, contrasts)
        entry["losses"] = _loss_rows(db, block, tables, names, reference)
        entry["per_class"], entry["wins"] = _contrast_rows(block, scores, contrasts, names,
                                                           alpha)
        out.append(entry)
    return out


def _tables(db, block, names: list[str]) -> tuple[dict, list[str]]:
    """(loss, seed) -> the run's stratum table (stored, or computed from its scores), and
    the notes on them (why there are no view strata)."""
    tables, notes, views = {}, [], False  # views: read once per block, when first needed
    for loss, by_seed in block.stats.items():
        for seed in by_seed:
            rid = block.runs[loss][seed]["id"]
            stored, digest = db.stored_strata(rid), db.prediction_digest(rid)
            if stored is not None and digest is not None and stored["key"] == table_key(digest):
                tables[(loss, seed)] = unpack_table(stored["names"], stored["table"])
                note = stored["note"]
            else:
                pred = db.predictions(rid)
                if pred is None:
                    continue
                if views is False:
                    views, views_note = _views(db, block)
                tables[(loss, seed)] = run_table(pred[1], pred[0], views, names,
                                                 db.prediction_mask(rid))
                note = views_note
            if note and note not in notes:
                notes.append(note)
    return tables, notes


def _scores(db, block, contrasts: list[dict]) -> dict:
    """(loss, seed) -> stored test scores of the block's runs of a primary contrast."""
    wanted = {c[k] for c in contrasts for k in ("loss", "versus")}
    out = {}
    for loss, by_seed in block.stats.items():
        if loss not in wanted:
            continue
        for seed in by_seed:
            pred = db.predictions(block.runs[loss][seed]["id"])
            if pred is not None:
                out[(loss, seed)] = pred[0]
    return out


def _views(db, block):
    """(N,) view of each test image from the dataset's label table, or (None, why not)."""
    from mlbench.data.release import views_of

    run = next(iter(next(iter(block.runs.values())).values()), None) if block.runs else None
    if run is None:
        return None, ""
    ids = db.test_ids(run["id"])
    if ids is None:
        return None, "no test image ids stored: no view strata"
    return views_of(run["config"]["dataset"]["root"], ids[0])


def _loss_rows(db, block, tables: dict, names: list[str], reference: str) -> list:
    classes = block.classes
    positives = block.targets[:, classes].sum(axis=0)
    sparsest = int(np.argmin(positives))
    keep = [k for k in range(len(classes)) if k != sparsest]
    ref = block.stats.get(reference, {})
    val = val_aucs(db, [r["id"] for by in block.runs.values() for r in by.values()])[0]
    rows = []
    for loss, by_seed in block.stats.items():
        seeds = sorted(by_seed)
        full = [by_seed[s].auc.mean() for s in seeds]
        part = [by_seed[s].auc[keep].mean() if keep else math.nan for s in seeds]
        matched = [s for s in seeds if s in ref]
        row = {"loss": loss, "seeds": len(seeds), "mean_auc": float(np.mean(full)),
               "without": float(np.mean(part)), "sparsest": names[classes[sparsest]],
               "delta": math.nan, "delta_without": math.nan}
        if matched and loss != reference:
            row["delta"] = float(np.mean([by_seed[s].auc.mean() - ref[s].auc.mean()
                                          for s in matched]))
            if keep:  # one class: nothing is left without the sparsest (NaN, said as "-")
                row["delta_without"] = float(np.mean([by_seed[s].auc[keep].mean()
                                                      - ref[s].auc[keep].mean()
                                                      for s in matched]))
        vals = [val[block.runs[loss][s]["id"]] for s in seeds if block.runs[loss][s]["id"] in val]
        row["val_auc"] = float(np.mean(vals)) if vals else math.nan
        per = [table_mean(tables[(loss, s)], classes) for s in seeds if (loss, s) in tables]
        for name in STRATA:
            got = [p[name] for p in per if name in p and p[name] == p[name]]
            row[name] = float(np.mean(got)) if got else math.nan
        rows.append(row)
    for key, rank in (("val_auc", "val_rank"), ("mean_auc", "test_rank")):
        order = sorted((r for r in rows if r[key] == r[key]), key=lambda r: -r[key])
        for i, r in enumerate(order):
            r[rank] = i + 1
    return rows


def _contrast_rows(block, scores: dict, contrasts: list[dict], names: list[str],
                   alpha: float) -> tuple[list, list]:
    gi, ng = group_index(block.groups)
    classes = block.classes
    rows, wins = [], []
    for c in contrasts:
        if (c["backbone"], c["head"]) != block.key[:2] or c.get("setup", block.key[2]) != block.key[2]:
            continue
        chance = c["versus"] == CHANCE
        sa, sb = block.stats.get(c["loss"], {}), block.stats.get(c["versus"], {})
        seeds = [s for s in sorted(sa) if (chance or s in sb) and (c["loss"], s) in scores
                 and (chance or (c["versus"], s) in scores)]
        if len(seeds) < 2:
            continue
        a = [class_stats(block.targets, scores[(c["loss"], s)], classes) for s in seeds]
        b = None if chance else [class_stats(block.targets, scores[(c["versus"], s)], classes)
                                 for s in seeds]
        comps = per_class_delta(a, b, gi, ng, alpha)
        for k, comp in zip(classes, comps, strict=True):
            rows.append({"contrast": c["contrast"], "finding": names[k], "delta": comp.delta,
                         "lo": comp.ci_lo, "hi": comp.ci_hi, "p": comp.p_value})
        wins.append({"contrast": c["contrast"], "classes": len(classes), **win_loss(comps)})
    return rows, wins


# ------------------------------------------------------------------ display


def _f(x, signed=False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def tables(strata: list[dict]) -> list[tuple[str, object]]:
    """(title, DataFrame) pairs to show: per block the strata table, then each contrast's
    per-class Δ with its win / loss counts in the title."""
    import pandas as pd

    out = []
    for entry in strata:
        rows = []
        for r in entry["losses"]:
            row = {"loss": r["loss"], "seeds": str(r["seeds"]),
                   "val AUC (rank)": _f(r["val_auc"]) + (f" ({r['val_rank']})" if "val_rank" in r else ""),
                   "test AUC (rank)": _f(r["mean_auc"]) + (f" ({r['test_rank']})" if "test_rank" in r else ""),
                   f"w/o {r['sparsest']}": _f(r["without"]),
                   "Δ": _f(r["delta"], True), "Δ w/o": _f(r["delta_without"], True)}
            for name in STRATA:
                if not (name.startswith("view") and all(math.isnan(x[name]) for x in entry["losses"])):
                    row[name] = _f(r[name])
            rows.append(row)
        out.append((f"{entry['where']}: validation vs test, without the sparsest class, strata",
                    pd.DataFrame(rows)))
        for w in entry["wins"]:
            part = [r for r in entry["per_class"] if r["contrast"] == w["contrast"]]
            frame = pd.DataFrame([{"finding": r["finding"],
                                   "Δ [95% CI]": _f(r["delta"], True)
                                   + ("" if math.isnan(r["lo"]) else f" [{r['lo']:+.4f}, {r['hi']:+.4f}]"),
                                   "p": "" if math.isnan(r["p"]) else f"{r['p']:.3g}"}
                                  for r in part])
            title = (f"{entry['where']}: per-class Δ of {w['contrast']}: {w['wins']} wins, "
                     f"{w['losses']} losses, {w['ties']} ties of {w['classes']} classes "
                     f"(by sign: {w['above']} above, {w['below']} below)")
            out.append((title, frame))
    return out


def notes(strata: list[dict]) -> list[str]:
    if not strata:
        return []
    return [NOTE] + [n for e in strata for n in e["notes"]]
