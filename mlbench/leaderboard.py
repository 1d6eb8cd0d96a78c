"""The leaderboard: a query over the records of ``results.db``.

One row per (backbone, head, loss) over its finished runs (seeds):
    mean AUC over seeds ± std (ddof=1), the 95% bootstrap CI (per-run percentile bootstrap
    over test images, bounds averaged over seeds), mAP, Δ mean AUC vs the reference loss of
    the same backbone and head (seed-matched mean of the per-seed differences) with the
    paired DeLong p-value (mean-AUC DeLong on the stored test predictions, per seed; the
    largest p over seeds is shown, the conservative choice), and the per-class AUCs.

On the real ChestX-ray14 the published results of SPEC §6 are added as context rows,
labelled with their split (official vs random); they are not comparable with sim numbers
and never shown for CXR14-sim.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from mlbench.db import ResultsDB

FORMATS = ("text", "md", "csv", "html")

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


def short_name(finding: str, others: list[str] | tuple[str, ...] = ()) -> str:
    """Column label of a finding: its first four letters (``Pleural_Thickening`` -> ``Pleu``),
    more where another of ``others`` shares them (``Pneumonia`` / ``Pneumothorax`` ->
    ``Pneumon`` / ``Pneumot``), so that no two columns get one label."""
    text = finding.replace("_", " ")
    rest = [o.replace("_", " ") for o in others if o != finding]
    n = 4
    while n < len(text) and any(o[:n] == text[:n] for o in rest):
        n += 1
    return text[:n]


def loss_key(spec: str) -> str:
    """A loss spec as the leaderboard labels it: suites store string specs without spaces."""
    return re.sub(r"\s+", "", spec)


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    std = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
    return float(np.mean(vals)), std


def _nan(x):
    return math.nan if x is None else x


def setup_of(config: dict) -> str:
    """Short hash of everything in a run config but backbone, head, loss and seed.

    Runs of one output folder made with different settings (say ``--set train.lr=...``)
    get different setups and are never averaged together or compared with each other.
    """
    from mlbench.suite.identity import run_id

    rest = {k: v for k, v in config.items() if k not in ("backbone", "head", "loss", "seed", "suite")}
    return run_id(rest)[:6]


def collect(db: ResultsDB) -> dict:
    """Finished runs with their run-level and per-class metrics, grouped by grid cell.

    Returns:
        ``{"cells": {(backbone, head, loss, setup): {seed: {"id", "mean_auc",
        "mean_auc_lo", "mean_auc_hi", "map", "auc": {finding: value}}}}, "failed":
        {(backbone, head, loss, setup): count}}``, cells in insertion order.
    """
    cells: dict = {}
    failed: dict = defaultdict(int)
    metric_rows = defaultdict(list)
    for m in db.metrics():
        metric_rows[m["run_id"]].append(m)
    for run in db.runs():
        key = (run["backbone"], run["head"], run["loss"], setup_of(run["config"]))
        if run["status"] == "failed":
            failed[key] += 1
            cells.setdefault(key, {})
            continue
        if run["status"] != "finished":
            continue
        rec = {"id": run["id"], "auc": {}, "ap": {}}
        for m in metric_rows[run["id"]]:
            if m["finding"]:
                rec[m["name"]][m["finding"]] = _nan(m["value"])
            else:
                rec[m["name"]] = _nan(m["value"])
                if m["name"] == "mean_auc":
                    rec["mean_auc_lo"], rec["mean_auc_hi"] = _nan(m["lo"]), _nan(m["hi"])
        cells.setdefault(key, {})[run["seed"]] = rec
    return {"cells": cells, "failed": dict(failed)}


def _delong_p(db: ResultsDB, run_a: str, run_b: str) -> float:
    from mlbench.metrics import delong_mean_test

    a, b = db.predictions(run_a), db.predictions(run_b)
    if a is None or b is None or a[1].shape != b[1].shape or not np.array_equal(a[1], b[1]):
        return math.nan  # not the same test set: no paired test
    return delong_mean_test(a[1], a[0], b[0]).p_value


def findings_of(db: ResultsDB, cells: dict) -> list[str]:
    """Finding names in canonical order (stored at run time), else as first seen."""
    stored = db.get_meta("findings")
    if stored:
        return list(stored)
    seen: list[str] = []
    for seeds in cells.values():
        for rec in seeds.values():
            for f in rec["auc"]:
                if f not in seen:
                    seen.append(f)
    return seen


def build(db: ResultsDB, reference: str = "bce", per_class: bool = True,
          published: bool | None = None) -> pd.DataFrame:
    """The leaderboard as a DataFrame (numbers unrounded, straight from the records).

    Args:
        db: the results store.
        reference: loss label the Δ and DeLong columns compare against.
        per_class: add one AUC column per finding.
        published: add SPEC §6 context rows; default: only when the dataset is the real one.
    """
    reference = loss_key(reference)
    data = collect(db)
    cells, failed = data["cells"], data["failed"]
    findings = findings_of(db, cells)
    rows = []
    many_setups = len({key[3] for key in cells}) > 1
    for (backbone, head, loss, setup), seeds in cells.items():
        ref = cells.get((backbone, head, reference, setup), {})
        mean, std = _mean_std([r.get("mean_auc") for r in seeds.values()])
        lo, _ = _mean_std([r.get("mean_auc_lo") for r in seeds.values()])
        hi, _ = _mean_std([r.get("mean_auc_hi") for r in seeds.values()])
        mapv, _ = _mean_std([r.get("map") for r in seeds.values()])
        matched = sorted(set(seeds) & set(ref))
        delta, p = math.nan, math.nan
        if loss != reference and matched:
            delta = float(np.mean([seeds[s]["mean_auc"] - ref[s]["mean_auc"] for s in matched]))
            ps = [_delong_p(db, seeds[s]["id"], ref[s]["id"]) for s in matched]
            p = max(ps) if not any(math.isnan(x) for x in ps) else math.nan
        row = {
            "backbone": backbone, "head": head, "loss": loss, "seeds": len(seeds),
            "failed": failed.get((backbone, head, loss, setup), 0),
            "mean_auc": mean, "std": std, "ci_lo": lo, "ci_hi": hi, "map": mapv,
            "delta": 0.0 if loss == reference and seeds else delta, "p_delong": p,
        }
        if many_setups:
            row["setup"] = setup
        if per_class:
            for f in findings:
                row[f] = _mean_std([r["auc"].get(f, math.nan) for r in seeds.values()])[0]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # groups in suite order, best mean AUC first within a group
    order = {g: i for i, g in enumerate(dict.fromkeys(zip(df["backbone"], df["head"], strict=False)))}
    df["_group"] = [order[g] for g in zip(df["backbone"], df["head"], strict=False)]
    df = df.sort_values(["_group", "mean_auc"], ascending=[True, False], na_position="last",
                        kind="stable").drop(columns="_group").reset_index(drop=True)
    if published is None:
        published = db.get_meta("dataset", {}).get("kind") == "real"
    if published:
        context = pd.DataFrame([
            {"backbone": "published (context)", "head": f"{split} split",
             "loss": f"{source}, {model}",
             "seeds": 0, "failed": 0, "mean_auc": auc}
            for source, model, split, auc in PUBLISHED
        ])
        df = pd.concat([df, context], ignore_index=True)
    return df


NUMBER_COLUMNS = ("backbone", "head", "loss", "setup", "seeds", "failed", "mean_auc", "std",
                  "ci_lo", "ci_hi", "map", "delta", "p_delong")


def finding_columns(df: pd.DataFrame) -> list[str]:
    """The per-class AUC columns of a ``build`` frame."""
    return [c for c in df.columns if c not in NUMBER_COLUMNS]


def _fmt(x, digits=4, signed=False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def display_frame(df: pd.DataFrame, reference: str = "bce") -> pd.DataFrame:
    """Human-readable columns: ``0.8123 ± 0.0041``, ``[0.80, 0.82]``, Δ, p, per-class."""
    if df.empty:
        return df
    reference = loss_key(reference)
    findings = finding_columns(df)
    out = pd.DataFrame({
        "backbone": df["backbone"], "head": df["head"], "loss": df["loss"],
        "seeds": [str(int(n)) + (f" ({int(f)} failed)" if f else "")
                  for n, f in zip(df["seeds"], df["failed"].fillna(0), strict=False)],
    })
    if "setup" in df.columns:
        out["setup"] = df["setup"].fillna("")
    out["mean AUC ± std"] = [
        _fmt(m) + (f" ± {s:.4f}" if isinstance(s, float) and not math.isnan(s) else "")
        for m, s in zip(df["mean_auc"], df.get("std", np.nan), strict=False)
    ]
    out["95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" if not (math.isnan(lo) or math.isnan(hi)) else ""
                     for lo, hi in zip(df["ci_lo"].astype(float), df["ci_hi"].astype(float), strict=False)]
    out["mAP"] = [_fmt(x) for x in df["map"].astype(float)]
    out[f"Δ vs {reference}"] = [
        "ref" if loss == reference and n else _fmt(d, signed=True)
        for loss, n, d in zip(df["loss"], df["seeds"], df["delta"].astype(float), strict=False)
    ]
    out["p (DeLong)"] = [_fmt_p(p) for p in df["p_delong"].astype(float)]
    for f in findings:
        out[short_name(f, findings)] = [_fmt(x, 3) for x in df[f].astype(float)]
    return out


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return ""
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def render(df: pd.DataFrame, fmt: str = "text", reference: str = "bce") -> str:
    """The leaderboard as text (tabulate), Markdown, CSV (raw numbers) or an HTML table."""
    if fmt not in FORMATS:
        raise ValueError(f"Expected argument `fmt` to be one of {list(FORMATS)} but got {fmt!r}")
    if df.empty:
        return "no finished runs yet\n"
    if fmt == "csv":
        return df.to_csv(index=False)
    from tabulate import tabulate

    shown = display_frame(df, reference)
    tablefmt = {"text": "simple", "md": "github", "html": "html"}[fmt]
    parts = []
    for (backbone, head), group in shown.groupby(["backbone", "head"], sort=False):
        body = tabulate(group.drop(columns=["backbone", "head"]), headers="keys",
                        tablefmt=tablefmt, showindex=False, disable_numparse=True)
        title = f"{backbone} / {head}"
        if fmt == "md":
            parts.append(f"### {title}\n\n{body}\n")
        elif fmt == "html":
            parts.append(f"<h3>{_escape(title)}</h3>\n{body}")
        else:
            parts.append(f"== {title} ==\n{body}\n")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def leaderboard(out_dir: str | Path, fmt: str = "text", reference: str | None = None,
                per_class: bool = True) -> str:
    """Open ``OUT/results.db`` and render its leaderboard.

    ``reference`` defaults to the suite's ``eval.reference`` stored with the results.
    """
    path = Path(out_dir)
    db_path = path if path.suffix == ".db" else path / "results.db"
    with ResultsDB(db_path, readonly=True) as db:
        reference = reference or db.get_meta("reference", "bce")
        df = build(db, reference=reference, per_class=per_class)
    text = render(df, fmt, reference)
    if fmt in ("text", "md") and not df.empty:
        done = df[df["seeds"] > 0]
        if loss_key(reference) not in set(done["loss"]):
            text += (f"\nnote: no finished run of the reference loss {loss_key(reference)!r}, "
                     f"so Δ and p are empty; losses with finished runs: "
                     f"{sorted(set(done['loss']))}\n")
    return text
