"""The leaderboard's numbers: finished runs of ``results.db`` -> one row per loss, with the
statistics of SPEC §5.1 (``mlbench.stats``).

Runs are grouped into *blocks*: one (backbone, head, setup), where the setup is the rest of the
run config (labelled by the keys that differ between setups, :func:`setup_labels`), so one test
set and one set of classes. Per block, each run's stored test scores give its per-class AUC and DeLong influence values over the classes the sparse-
class rule keeps; each loss gets the CI of its mean AUC and a paired comparison with the
reference loss on the seeds both have, each with its own seed term
(:func:`mlbench.stats.seed_terms`: nothing pooled between losses, so an unstable loss moves
no one else's p); a loss whose seed spread the others' cannot explain is flagged
unstable; Holm adjusts the p-values over every comparison of the table. Rendering:
:mod:`mlbench.leaderboard.table`.

On the real ChestX-ray14 the published results of SPEC §6 are added as context rows,
labelled with their split (official vs random), where the runs' test split is the official
one in full (their stored test image ids); a part of it (a partial release, one view) gets a
note instead. They are never shown for CXR14-sim.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlbench.db import ResultsDB
from mlbench.layout import OFFICIAL_TEST, is_official_test, is_sim
from mlbench.stats import (
    SparseRule,
    compare,
    group_index,
    holm,
    mean_ci,
    run_stats,
    seed_terms,
)
from mlbench.stats.seedvar import bartlett

UNSTABLE_P = 0.05  # flagged unstable: Holm-adjusted outlier p of its seed spread below this

# SPEC §6: published mean AUC on ChestX-ray14, with the split they were measured on.
PUBLISHED = (
    ("Wang et al. 2017 (arXiv v5)", "ResNet-50", "official", 0.745),
    ("Guendel et al. 2018", "DenseNet-121", "official", 0.807),
    ("Baltruschat et al. 2019", "ResNet-50", "official", 0.806),
    ("AE-CNN 2018", "ResNet-50", "official", 0.824),
    ("Medical-MAE 2023", "ViT-B", "official", 0.830),
    ("Medical-MAE 2023", "DenseNet-121 (ImageNet)", "official", 0.822),
    ("CheXNet 2017", "DenseNet-121", "random (not comparable)", 0.841),
)


def loss_key(spec: str) -> str:
    """A loss spec as the leaderboard labels it: suites store string specs without spaces."""
    return re.sub(r"\s+", "", spec)




def setup_of(config: dict) -> str:
    """Short hash of everything in a run config but backbone, head, loss and seed.

    Runs of one output folder made with different settings (say ``--set train.lr=...``)
    get different setups and are never averaged together or compared with each other.
    """
    from mlbench.suite import run_id

    return run_id(_setup_config(config))[:6]


def _setup_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("backbone", "head", "loss", "seed", "suite")}


def setup_labels(configs: dict[str, dict], most: int = 3) -> dict[str, str]:
    """A label per setup (``{setup hash: one of its run configs}``) naming the config keys
    whose values differ between the setups, e.g. ``train.epochs=2`` beside ``train.epochs=3``
    (``KEY=-`` where a setup lacks the key). More than ``most`` differing keys: the first
    ``most`` and the hash, so labels stay short and distinct. One setup: its hash."""
    from mlbench.suite import canonical_json

    flat = {h: _flatten(_setup_config(c)) for h, c in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    differ = [k for k in keys if len({canonical_json(f.get(k, "-")) for f in flat.values()}) > 1]
    if len(configs) < 2 or not differ:
        return {h: h for h in configs}
    labels = {}
    for h, f in flat.items():
        text = ", ".join(f"{k}={_value_text(f.get(k, '-'))}" for k in differ[:most])
        labels[h] = text + (f", ... [{h}]" if len(differ) > most else "")
    return labels


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _value_text(value) -> str:
    from mlbench.suite import canonical_json

    return value if isinstance(value, str) else canonical_json(value)


# ------------------------------------------------------------------ records -> blocks


@dataclass
class Block:
    """The finished runs of one (backbone, head, setup): one test set, one set of classes.

    ``stats[loss][seed]`` holds each run's :class:`mlbench.stats.RunStats` over ``classes``;
    ``records[run_id]`` its stored metrics; ``runs[loss][seed]`` its row of ``runs``.
    """

    key: tuple
    runs: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    targets: np.ndarray | None = None
    mask: np.ndarray | None = None  # (N, C) True where a label is known (a named test set's)
    groups: np.ndarray | None = None
    ids_note: str = ""
    classes: list = field(default_factory=list)
    left_out: dict = field(default_factory=dict)
    other_test_set: list = field(default_factory=list)

    @property
    def seeds(self) -> list:
        """The seeds of the loss with most finished seeds (a complete loss has them all)."""
        return max((sorted(s) for s in self.stats.values()), key=len, default=[])

    def seed_terms(self, reference: str) -> dict:
        """Seed terms of the block's losses (their mean AUC over seeds) and comparisons with
        ``reference`` (paired differences on the seeds both have), each its own, with its
        outlier p over its kind (:func:`mlbench.stats.seed_terms`); plus Bartlett's test of equal seed spreads of
        the paired differences. {"mean": {loss: SeedTerm}, "diff": {loss: SeedTerm},
        "matched": {loss: seeds}, "bartlett": (stat, p)}."""
        losses = [loss for loss in self.stats if self.stats[loss]]
        means = [np.array([self.stats[loss][s].mean_auc for s in sorted(self.stats[loss])])
                 for loss in losses]
        out = {"mean": dict(zip(losses, seed_terms(means), strict=True)), "diff": {},
               "matched": {}, "bartlett": (np.nan, np.nan)}
        ref = self.stats.get(reference, {})
        others = [loss for loss in losses if loss != reference]
        matched = {loss: [s for s in sorted(self.stats[loss]) if s in ref] for loss in others}
        diffs = [np.array([self.stats[loss][s].mean_auc - ref[s].mean_auc for s in matched[loss]])
                 for loss in others]
        if others:
            terms = seed_terms(diffs)
            out["diff"] = dict(zip(others, terms, strict=True))
            out["matched"] = matched
            out["bartlett"] = bartlett([t.own_var for t in terms], [t.own_df for t in terms])
        return out


def _records(db: ResultsDB) -> dict:
    out: dict = defaultdict(lambda: {"auc": {}, "ap": {}})
    for m in db.metrics():
        rec = out[m["run_id"]]
        if m["finding"]:
            rec.setdefault(m["name"], {})[m["finding"]] = _nan(m["value"])
        else:
            rec[m["name"]] = _nan(m["value"])
    return out


def _ids_from_config(config: dict, n: int):
    """Test image / patient ids of an older run (none stored) from its dataset config."""
    try:
        from mlbench.data import ChestXray14
        from mlbench.stats import dataset_ids

        d = config["dataset"]
        ds = ChestXray14(d["root"], "test", val_fraction=d["val_fraction"], seed=d["split_seed"],
                         view=d["view"], image_size=d["image_size"], missing=d["missing"],
                         cache_dir=d.get("cache_dir"))
        images, patients = dataset_ids(ds)
    except Exception:  # no dataset here (moved, other machine): the caller says so
        return None
    return (images, patients) if len(images) == n else None


def analyse(db: ResultsDB, rule: SparseRule | None = None) -> tuple[list[Block], dict]:
    """Every finished run's statistics, grouped into blocks; plus failed-run counts per cell."""
    rule = rule or SparseRule()
    records = _records(db)
    blocks: dict = {}
    failed: dict = defaultdict(int)
    configs: dict = {}
    for run in db.runs():
        key = (run["backbone"], run["head"], setup_of(run["config"]))
        configs.setdefault(key[2], run["config"])
        block = blocks.setdefault(key, Block(key))
        if run["status"] == "failed":
            failed[key + (run["loss"],)] += 1
            block.runs.setdefault(run["loss"], {})
        elif run["status"] == "finished":
            block.runs.setdefault(run["loss"], {})[run["seed"]] = run
            block.records[run["id"]] = records[run["id"]]
    labels = setup_labels(configs)
    named: dict = {}
    for key, block in blocks.items():
        block.key = key[:2] + (labels[key[2]],)
        named[block.key] = block
        _block_stats(db, block, rule)
    failed = {key[:2] + (labels[key[2]],) + key[3:]: n for key, n in failed.items()}
    return list(named.values()), failed


def _block_stats(db: ResultsDB, block: Block, rule: SparseRule) -> None:
    first_ids = None
    for loss, by_seed in block.runs.items():
        for seed, run in sorted(by_seed.items()):
            pred = db.predictions(run["id"])
            if pred is None:
                continue
            scores, targets = pred
            mask = db.prediction_mask(run["id"])
            if block.targets is None:
                block.targets, block.mask = targets, mask
                first_ids = db.test_ids(run["id"])
                if first_ids is None:
                    first_ids = _ids_from_config(run["config"], len(targets))
                    if first_ids is not None:
                        block.ids_note = "test ids recomputed from the dataset (older results.db)"
                if first_ids is None or first_ids[1] is None:
                    block.groups = np.arange(len(targets))
                    block.ids_note = (
                        "no patient ids stored with these runs (older results.db) and the dataset "
                        "is not readable here: CIs and p treat images as independent (too "
                        "narrow); with the dataset in place `python -m mlbench leaderboard` "
                        "recomputes them, or rerun the suite into a new folder")
                else:
                    block.groups = np.asarray(first_ids[1])
                block.classes, block.left_out = rule.check(targets, block.groups, mask)
            elif targets.shape != block.targets.shape or not np.array_equal(targets, block.targets) \
                    or not _same_mask(mask, block.mask):
                block.other_test_set.append(run["id"])
                continue
            ids = db.test_ids(run["id"])
            if ids is not None and first_ids is not None and not np.array_equal(ids[0], first_ids[0]):
                block.other_test_set.append(run["id"])
                continue
            block.stats.setdefault(loss, {})[seed] = run_stats(targets, scores, block.classes,
                                                               mask)


def _same_mask(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


# ------------------------------------------------------------------ blocks -> table


def _mean_sd(values) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan


def _nan(x):
    return math.nan if x is None else x


def _cost(block: Block, loss: str, reference: str) -> float:
    """Mean over seeds of train time / the reference's, same seed and device."""
    ref = block.runs.get(reference, {})
    ratios = []
    for seed, run in block.runs.get(loss, {}).items():
        other = ref.get(seed)
        if other is None or run.get("device") != other.get("device"):
            continue
        a = block.records[run["id"]].get("train_seconds", math.nan)
        b = block.records[other["id"]].get("train_seconds", math.nan)
        if a == a and b == b and b > 0:
            ratios.append(a / b)
    return float(np.mean(ratios)) if ratios else math.nan


def build(db: ResultsDB, reference: str = "bce", per_class: bool = True,
          published: bool | None = None, alpha: float = 0.05,
          rule: SparseRule | None = None, analysis: dict | None = None,
          strata: bool = True) -> pd.DataFrame:
    """The leaderboard as a DataFrame (numbers unrounded), with the statistics of SPEC §5.1.

    One row per (backbone, head, loss[, setup]). ``mean_auc`` / ``std``: mean and SD over
    seeds of the run's mean AUC over the classes the rule keeps; ``ci_lo``/``ci_hi``: its
    CI (:func:`mlbench.stats.mean_ci`); ``delta``, ``delta_lo``/``delta_hi``, ``p``: the paired
    comparison with the reference on the seeds both have (:func:`mlbench.stats.compare`);
    ``p_holm``: Holm over every comparison of the table; ``significant``: p_holm < alpha;
    ``incomplete``: fewer finished seeds than its cell's seeds in the suite
    (:func:`planned_seeds`; results without them: than the setup's fullest loss); ``cost``: train time
    / the reference's (same seed and device). ``df.attrs["notes"]``: the footnotes.
    ``analysis``: the suite's ``analysis`` section (default: stored with the results); its
    primary contrasts form their own Holm family (:mod:`.primary`: ``family``, ``verdict``;
    ``df.attrs["primary"]`` one row per contrast and setup), the rest are exploratory.
    ``strata``: ``df.attrs["strata"]``, per block (:mod:`.strata`).
    """
    from mlbench.leaderboard import primary as prim
    reference = loss_key(reference)
    blocks, failed = analyse(db, rule)
    findings = findings_of(db, blocks)
    many_setups = len({b.key[2] for b in blocks}) > 1
    if analysis is None:
        analysis = db.get_meta("analysis", {}) or {}
    contrasts = prim.evaluate(blocks, analysis, reference, alpha, many_setups)
    planned = planned_seeds(db)
    rows, notes, tests = [], [], []
    for block in blocks:
        backbone, head, setup = block.key
        gi, ng = group_index(block.groups) if block.groups is not None else (None, 0)
        seeds_all = block.seeds
        ref_stats = block.stats.get(reference, {})
        kw = dict(alpha=alpha, classes=block.classes, left_out=block.left_out)
        terms = block.seed_terms(reference) if block.classes else None
        flags = unstable_flags(terms) if terms else {}
        first = len(rows)
        for loss in block.runs:
            by_seed = block.stats.get(loss, {})
            seeds = sorted(by_seed)
            recs = [block.records[block.runs[loss][s]["id"]] for s in seeds]
            want = planned.get((backbone, head, loss), len(seeds_all))
            row = {"backbone": backbone, "head": head, "loss": loss, "seeds": len(seeds),
                   "failed": failed.get(block.key + (loss,), 0),
                   "incomplete": 0 < len(seeds) < want}
            if many_setups:
                row["setup"] = setup
            if contrasts:
                row["family"] = prim.family_of(contrasts, block.key, loss, reference)
            if block.classes:
                mean, sd = _mean_sd([by_seed[s].mean_auc for s in seeds])
            else:  # no class passes the rule: the stored means (every class), no statistics
                mean, sd = _mean_sd([r.get("mean_auc", math.nan) for r in recs])
            row.update(mean_auc=mean, std=sd, ci_lo=math.nan, ci_hi=math.nan, delta=math.nan,
                       delta_lo=math.nan, delta_hi=math.nan, p=math.nan, df=math.nan,
                       seed_term="", matched=0, sd_delta=math.nan, df_test=math.nan,
                       seed_p=math.nan, unstable=bool(flags.get(loss)))
            if seeds and block.classes:
                ci = mean_ci([by_seed[s] for s in seeds], gi, ng, seed=terms["mean"][loss], **kw)
                row.update(ci_lo=ci.ci_lo, ci_hi=ci.ci_hi, seed_term=ci.seed_term,
                           seed_p=ci.outlier_p)
            matched = [s for s in seeds if s in ref_stats]
            if loss == reference and seeds:
                row["delta"] = 0.0
            elif matched and block.classes:
                c = compare([by_seed[s] for s in matched], [ref_stats[s] for s in matched], gi,
                            ng, seed=terms["diff"][loss], **kw)
                row.update(delta=c.delta, delta_lo=c.ci_lo, delta_hi=c.ci_hi, p=c.p_value,
                           df=c.df, seed_term=c.seed_term, matched=len(matched),
                           sd_delta=c.sd_seed, df_test=c.df_test, seed_p=c.outlier_p)
                if np.isfinite(c.p_value):
                    tests.append(len(rows))
            for name in ("map", "lrap", "ranking_loss"):
                row[name] = _mean_sd([r.get(name, math.nan) for r in recs])[0]
            row["cost"] = _cost(block, loss, reference)
            row["left_out"] = ";".join(findings[c] if c < len(findings) else str(c)
                                       for c in sorted(block.left_out))
            if per_class:
                for f in findings:
                    row[f] = _mean_sd([r["auc"].get(f, math.nan) for r in recs])[0]
            rows.append(row)
        if terms:
            prim.add_p_best(block, rows[first:], terms)
        notes += _block_notes(block, findings, many_setups)
        notes += _seed_notes(block, rows[first:], terms, flags, reference, many_setups)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    if contrasts:
        df = prim.adjust(df, contrasts, reference, alpha)
    else:
        df["p_holm"] = holm(df["p"].to_numpy(dtype=float))
        df["significant"] = df["p_holm"] < alpha
    # groups in suite order, best mean AUC first within a group
    order = {g: i for i, g in enumerate(dict.fromkeys(zip(df["backbone"], df["head"], strict=False)))}
    df["_group"] = [order[g] for g in zip(df["backbone"], df["head"], strict=False)]
    df = df.sort_values(["_group", "mean_auc"], ascending=[True, False], na_position="last",
                        kind="stable").drop(columns="_group").reset_index(drop=True)
    if published is None:
        ds = db.get_meta("dataset", {}) or {}
        # a results.db made before the kind came from the data may call a sim folder "real"
        published = ds.get("kind") == "real" and not (ds.get("root") and is_sim(ds["root"]))
        official, n_images = _official(db, blocks)
        if published and not official:  # other images: not comparable
            published = False
            notes.append(PUBLISHED_NOTE.format(n=f"{n_images:,} images" if n_images else
                                               "no stored test image ids"))
    if published:
        context = pd.DataFrame([
            {"backbone": "published (context)", "head": f"{split} split",
             "loss": f"{source}, {model}", "seeds": 0, "failed": 0, "mean_auc": auc}
            for source, model, split, auc in PUBLISHED
        ])
        df = pd.concat([df, context], ignore_index=True)
    df.attrs["notes"] = notes
    df.attrs["comparisons"] = len(tests)
    df.attrs["primary"] = contrasts
    if strata:  # per-class Δ of the primary contrasts, strata, validation vs test
        from mlbench.leaderboard.strata import compute
        df.attrs["strata"] = compute(db, blocks, findings, contrasts, reference, alpha, many_setups)
    if "p_best" in df.columns:
        df.attrs["p_best_note"] = prim.P_BEST_NOTE
    df.attrs["margin"] = analysis.get("margin")
    df.attrs["unstable"] = "†"
    df.attrs["alpha"] = alpha
    df.attrs["reference"] = reference
    df.attrs["rule"] = (rule or SparseRule()).describe()
    return df


def planned_seeds(db) -> dict:
    """(backbone, head, loss) -> the number of seeds the suite gives the cell (meta ``seeds``,
    stored by ``run``; a cell may have more than the others, ``seeds.cells``), less the
    selection seed of a ``tune.fresh_seeds`` cell (not reported); {} for older results."""
    import json

    stored = db.get_meta("seeds", {}) or {}
    fresh = getattr(db, "fresh", set())
    out = {}
    for cid, seeds in stored.items():
        key = tuple(json.loads(cid))
        out[key] = len(seeds) - (key in fresh)
    return out


PUBLISHED_NOTE = (
    f"The published results on ChestX-ray14 (SPEC §6: CheXNet, Wang et al., ...) are not shown: "
    f"they were measured on the official test split ({OFFICIAL_TEST['images']:,} images of "
    f"{OFFICIAL_TEST['patients']:,} patients), and these runs' test split ({{n}}) is not "
    "that split in full (a part of the release, one view, other lists): not comparable.")


def _official(db, blocks: list[Block]) -> tuple[bool, int]:
    """Whether every block's test split (its stored test image ids) is the official test
    split in full, what the published results were measured on; and the number of test
    images of the first block that is not (0: none stored)."""
    seen = False
    for block in blocks:
        run = next((r for by in block.runs.values() for r in by.values()), None)
        if run is None:
            continue
        ids = db.test_ids(run["id"])
        if ids is None or not is_official_test(ids[0]):
            return False, 0 if ids is None else len(ids[0])
        seen = True
    return seen, 0


def unstable_flags(terms: dict) -> dict:
    """{loss: True} for losses whose seed spread the others' cannot explain: the outlier p of
    its paired differences' or its own mean AUC's seed variance (:func:`seed_terms`),
    Holm-adjusted over the block's comparisons / losses, below ``UNSTABLE_P``."""
    out = {}
    for kind in ("diff", "mean"):
        losses = list(terms[kind])
        p = holm([terms[kind][loss].outlier_p for loss in losses])
        for loss, q in zip(losses, p, strict=True):
            if np.isfinite(q) and q < UNSTABLE_P:
                out[loss] = True
    return out


def _seed_notes(block: Block, rows: list[dict], terms, flags: dict, reference: str,
                many: bool) -> list[str]:
    """Footnotes on the seed terms: unstable losses, too few matched seeds, unequal spreads,
    2-seed blocks."""
    if not terms or len(block.seeds) < 2:
        return []
    where = " / ".join(block.key if many else block.key[:2])
    out = []
    sds = {r["loss"]: r["std"] for r in rows if r["seeds"] >= 2}
    for r in rows:
        loss = r["loss"]
        if flags.get(loss):
            others = [v for k, v in sds.items() if k != loss and np.isfinite(v)]
            med = f"{np.median(others):.4f}" if others else "n/a"
            d = terms["diff"].get(loss)
            m = terms["mean"].get(loss)
            ps = [x.outlier_p for x in (d, m) if x is not None and np.isfinite(x.outlier_p)]
            out.append(
                f"{where}: † {loss} is unstable over seeds: SD {r['std']:.4f} of its mean AUC "
                f"(median of the others {med})"
                + (f", SD {r['sd_delta']:.4f} of its paired differences" if np.isfinite(
                    r.get("sd_delta", np.nan)) else "")
                + (f"; outlier p = {min(ps):.2g}" if ps else "")
                + ": its CI and test use its own seed spread, not the others'")
        elif 0 < r.get("matched", 0) < 2 and loss != reference:
            out.append(f"{where}: {loss}: {r['matched']} seed matched with {reference}: Δ of "
                       "one pair of networks, no seed spread, so no CI and no test")
    stat, p = terms["bartlett"]
    if np.isfinite(p) and p < 0.05:
        out.append(f"{where}: the losses' seed spreads of Δ differ (Bartlett p = {p:.2g}); "
                   "every CI and test uses its own comparison's seed spread, so the "
                   "unstable ones widen only their own")
    if len(block.seeds) == 2:
        out.append(f"{where}: 2 seeds: every seed spread rests on 1 df, so CIs and tests "
                   "are Behrens-Fisher's and conservative (type-I 1-4% at 5%); 3+ seeds "
                   "give t tests at their level")
    return out


def _block_notes(block: Block, findings: list[str], many: bool) -> list[str]:
    where = " / ".join(block.key if many else block.key[:2])
    out = []
    if block.ids_note:
        out.append(f"{where}: {block.ids_note}")
    if block.stats and len(block.seeds) == 1:
        out.append(f"{where}: 1 seed: no seed term, so no CIs and no tests (with one seed a "
                   "difference is about two trained networks, not two losses)")
    if block.stats and not block.classes:
        out.append(f"{where}: no class passes the sparse-class rule on this test split: mean "
                   "AUC over every estimable class, no CIs or tests")
    if block.other_test_set:
        out.append(f"{where}: runs {', '.join(block.other_test_set)} were scored on another "
                   "test set and are left out of the statistics")
    return out


def findings_of(db: ResultsDB, blocks: list[Block]) -> list[str]:
    """Finding names in canonical order (stored at run time), else as first seen."""
    stored = db.get_meta("findings")
    if stored:
        return list(stored)
    seen: list[str] = []
    for block in blocks:
        for rec in block.records.values():
            for f in rec["auc"]:
                if f not in seen:
                    seen.append(f)
    return seen
