"""One self-contained HTML report of a results folder.

Plots (matplotlib, Agg) are embedded as base64 PNG; the page links nothing outside itself:
the leaderboard table with its footnote (one per named test set of ``eval.test_sets``, with
the ranking transfer between them and Δ vs the reference per test set side by side), mean
AUC against cost (train time relative to the
reference), a heat map of per-class test AUC (losses x findings), ROC curves per finding
(every loss its own colour and line style, the reference in black) and training curves.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from pathlib import Path

import numpy as np

from mlbench.db import ResultsDB
from mlbench.leaderboard.analysis import build, loss_key
from mlbench.leaderboard.table import (
    finding_columns,
    render,
    render_test_sets,
    short_name,
    test_set_boards,
)
from mlbench.leaderboard.tuned import SelectedRuns, annotate
from mlbench.suite import stored_plan

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 1em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
.note { color: #666; font-size: 13px; }
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def heatmap(df, findings: list[str]) -> str | None:
    """Per-class AUC heat map, one row per backbone/head/loss. Returns a data URI."""
    rows = df[df["seeds"] > 0] if not df.empty else df
    if rows.empty or not findings:
        return None
    plt = _pyplot()
    values = rows[findings].to_numpy(dtype=float)
    setups = rows["setup"] if "setup" in rows.columns else [""] * len(rows)
    labels = [f"{b}/{h}/{loss}" + (f" [{s}]" if s else "")
              for b, h, loss, s in zip(rows["backbone"], rows["head"], rows["loss"], setups, strict=False)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(findings), 1.0 + 0.32 * len(labels)))
    im = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(findings)), [short_name(f, findings) for f in findings], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not math.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if values[i, j] < np.nanmean(values) else "black")
    fig.colorbar(im, ax=ax, label="test AUC (mean over seeds)")
    ax.set_title("Per-class test AUC")
    return _png(fig)


_STYLES = ("-", "--", "-.", ":")


def loss_styles(losses, reference: str) -> dict:
    """{loss: matplotlib kwargs}: a colour and line style per loss, no two alike (tab10 x 4
    styles, then tab20), the reference black, solid and thicker."""
    import matplotlib

    others = [x for x in dict.fromkeys(losses) if x != reference]
    cmap = matplotlib.colormaps["tab10"]
    out = {}
    for i, loss in enumerate(others):
        colour = cmap(i % 10) if i < 40 else matplotlib.colormaps["tab20"](i % 20)
        out[loss] = {"color": colour, "ls": _STYLES[(i // 10) % 4 if i < 40 else i % 4], "lw": 1.0}
    out[reference] = {"color": "black", "ls": "-", "lw": 1.8}
    return out


def cost_plot(df, reference: str) -> str | None:
    """Mean AUC (with its 95% CI) against cost, one point per loss, a panel per
    backbone/head; None when no cost is recorded."""
    if df.empty or "cost" not in df.columns or df["cost"].isna().all():
        return None
    plt = _pyplot()
    groups = list(df[df["seeds"] > 0].groupby(["backbone", "head"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, ((backbone, head), part) in zip(axes.flat, groups, strict=False):
        styles = loss_styles(part["loss"], reference)
        for _, row in part.iterrows():
            cost = 1.0 if row["loss"] == reference else row["cost"]
            if cost != cost:
                continue
            err = [[row["mean_auc"] - row["ci_lo"]], [row["ci_hi"] - row["mean_auc"]]]
            ax.errorbar([cost], [row["mean_auc"]], yerr=err, fmt="o", ms=4, capsize=2,
                        color=styles[row["loss"]]["color"])
            ax.annotate(row["loss"], (cost, row["mean_auc"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.axvline(1.0, color="#bbb", lw=0.8, ls="--")
        ax.set(xlabel=f"train time / {reference}'s (same seed and device)",
               ylabel="mean test AUC (95% CI)", title=f"{backbone} / {head}")
    fig.suptitle("Mean AUC against training cost")
    fig.tight_layout()
    return _png(fig)


def roc_curves(db: ResultsDB, findings: list[str], reference: str = "bce") -> list[tuple[str, str]]:
    """ROC curves per finding for each loss (lowest seed), one figure per backbone/head:
    every loss its own colour and line style, the reference black and thicker."""
    from sklearn.metrics import roc_curve

    groups: dict = {}
    for run in db.runs("finished"):
        key = (run["backbone"], run["head"])
        best = groups.setdefault(key, {})
        if run["loss"] not in best or run["seed"] < best[run["loss"]]["seed"]:
            best[run["loss"]] = run
    out = []
    plt = _pyplot()
    for (backbone, head), by_loss in groups.items():
        n = len(findings)
        cols = 5
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.8 * rows), squeeze=False)
        styles = loss_styles(by_loss, reference)
        for loss, run in by_loss.items():
            pred = db.predictions(run["id"])
            if pred is None:
                continue
            scores, targets = pred
            for c, ax in zip(range(n), axes.flat, strict=False):
                t = targets[:, c]
                if t.min() == t.max():
                    continue
                fpr, tpr, _ = roc_curve(t, scores[:, c])
                ax.plot(fpr, tpr, label=loss + (" (reference)" if loss == reference else ""),
                        **styles[loss])
        for c, ax in enumerate(axes.flat):
            if c >= n:
                ax.axis("off")
                continue
            ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--")
            ax.set_title(findings[c], fontsize=9)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=6, loc="lower right", ncol=2 if len(by_loss) > 8 else 1)
        fig.suptitle(f"ROC curves on the test set — {backbone} / {head} (lowest seed)")
        fig.tight_layout()
        out.append((f"{backbone} / {head}", _png(fig)))
    return out


def training_curves(db: ResultsDB) -> list[tuple[str, str]]:
    """Validation mean AUC and training loss per epoch: colour per loss, line style per seed."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    groups: dict = {}
    for run in db.runs("finished"):
        groups.setdefault((run["backbone"], run["head"]), []).append(run)
    out = []
    styles = ("-", "--", ":", "-.")
    for (backbone, head), runs in groups.items():
        fig, (ax_auc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4))
        colour = {loss: plt.cm.tab20(i % 20) for i, loss in enumerate(dict.fromkeys(r["loss"] for r in runs))}
        seeds = sorted({r["seed"] for r in runs})
        for run in runs:
            hist = db.epochs(run["id"])
            if not hist:
                continue
            epochs = [h.get("epoch", i) for i, h in enumerate(hist)]
            first = run["seed"] == seeds[0]  # one legend entry per loss
            kw = dict(marker="o", ms=3, lw=1, color=colour[run["loss"]],
                      ls=styles[seeds.index(run["seed"]) % len(styles)])
            auc = [h.get("val_mean_auc", math.nan) for h in hist]
            loss = np.array([h.get("train_loss", math.nan) for h in hist], dtype=float)
            ax_auc.plot(epochs, auc, label=run["loss"] if first else None, **kw)
            # losses live on different scales: relative to the first epoch, comparable
            ax_loss.plot(epochs, loss / loss[0] if loss[0] else loss, **kw)
        ax_auc.set(xlabel="epoch", ylabel="validation mean AUC", title="Validation mean AUC")
        ax_loss.set(xlabel="epoch", ylabel="training loss / epoch-0 loss",
                    title="Training loss (relative)")
        if ax_auc.get_legend_handles_labels()[0]:
            ax_auc.legend(fontsize=6, ncol=2, title=f"line style: seed {seeds}", title_fontsize=6)
        for ax in (ax_auc, ax_loss):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"Training curves — {backbone} / {head}")
        fig.tight_layout()
        out.append((f"{backbone} / {head}", _png(fig)))
    return out


def build_report(out_dir: str | Path, reference: str | None = None, strata: bool = True) -> str:
    """The report of ``OUT/results.db`` as one HTML string (``strata``: False leaves out the
    strata tables)."""
    path = Path(out_dir)
    db_path = path if path.suffix == ".db" else path / "results.db"
    with ResultsDB(db_path, readonly=True) as db:
        reference = loss_key(reference or db.get_meta("reference", "bce"))
        if stored_plan(db):  # tuned: each loss's chosen setting (table, ROC, training curves)
            db = SelectedRuns(db)
        df = build(db, reference=reference, strata=strata)
        if isinstance(db, SelectedRuns):
            df = annotate(df, db.selections, db.fresh)
        findings = db.get_meta("findings") or finding_columns(df)
        parts = [
            f"<h1>mlbench report — {html.escape(str(db.get_meta('suite', path.name)))}</h1>",
            f"<p class='note'>{html.escape(_describe(db))} Generated "
            f"{time.strftime('%Y-%m-%d %H:%M')}.</p>",
            "<h2>Leaderboard</h2>",
        ]
        # named test sets (eval.test_sets): one block each, the ranking transfer and Δ vs
        # the reference per test set side by side
        sets = None if isinstance(db, SelectedRuns) else test_set_boards(db, df, reference)
        parts.append(render_test_sets(sets, "html", reference) if sets
                     else render(df, "html", reference))
        cp = cost_plot(df, reference)
        if cp:
            parts += ["<h2>Mean AUC against cost</h2>", f"<img alt='mean AUC against cost' src='{cp}'>"]
        hm = heatmap(df, findings)
        if hm:
            parts += ["<h2>Per-class AUC</h2>", f"<img alt='per-class AUC heat map' src='{hm}'>"]
        for title, uri in roc_curves(db, findings, reference):
            parts += [f"<h2>ROC curves — {html.escape(title)}</h2>",
                      f"<img alt='ROC curves' src='{uri}'>"]
        for title, uri in training_curves(db):
            parts += [f"<h2>Training curves — {html.escape(title)}</h2>",
                      f"<img alt='training curves' src='{uri}'>"]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>mlbench report</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _describe(db: ResultsDB) -> str:
    ds = db.get_meta("dataset", {}) or {}
    counts = db.counts()
    kind = "CXR14-sim (simulated)" if ds.get("kind") == "sim" else "ChestX-ray14"
    return (f"Dataset: {kind} at {ds.get('root', '?')}, {ds.get('image_size', '?')} px. "
            f"Runs: {counts['finished']} finished, {counts['failed']} failed, "
            f"{counts['pending'] + counts['running']} not done.")


def write_report(out_dir: str | Path, dest: str | Path | None = None,
                 reference: str | None = None, strata: bool = True) -> Path:
    """Write the report (default ``OUT/report.html``); returns its path."""
    dest = Path(dest) if dest else Path(out_dir) / "report.html"
    page = build_report(out_dir, reference, strata)  # first: a missing results.db makes no folder
    from mlbench.files import atomic_write, disk_of, is_no_space

    try:  # whole or not at all: a kill or a full disk mid-write leaves the previous report
        atomic_write(dest, page, remove_dead=True)
    except OSError as exc:  # e.g. a read-only results folder, a full disk
        kept = "; the previous report is unchanged" if dest.exists() else ""
        why = f"no space left on the disk {disk_of(dest)}" if is_no_space(exc) \
            else exc.strerror or exc
        raise ReportWriteError(f"cannot write {dest}: {why}{kept}; "
                               "choose another file with -o FILE") from exc
    return dest


class ReportWriteError(OSError):
    """The report could not be written where asked."""
