"""The leaderboard's view of a tuned suite: :class:`SelectedRuns` (each cell's chosen
setting, as the table and the report see it), the chosen values beside a loss's row
(:func:`annotate`) and every tried setting (``--all-settings``, :func:`render_settings`).
What was chosen is the suite's (:mod:`mlbench.suite.selection`)."""

from __future__ import annotations

import copy
import math
from typing import Any

from mlbench.leaderboard.render import titled_tables
from mlbench.suite import Selection, selected, stored_plan

MASK = "(tuned)"  # a tuned train value as the leaderboard's setup sees it


class SelectedRuns:
    """``results.db`` as the leaderboard sees a tuned suite.

    ``runs()`` keeps, of each tuned cell, the chosen setting's runs only, labelled with the
    grid entry (``bce+{alpha}*msml``), with the tuned ``train`` values masked so that the
    cell's losses share one setup (one block of statistics); tuned runs that the stored plan
    no longer tries (a value removed) are left out; untuned runs pass unchanged. Everything else is the database's (``metrics``, ``predictions``, ...).
    """

    def __init__(self, db, selections: dict | None = None):
        self.db = db
        self.selections = selected(db) if selections is None else selections
        self._chosen: dict[str, list] = {}
        self._planned: set[str] = set()
        self.fresh = fresh_cells(db)  # cell keys whose selection run is not reported
        for sel in self.selections.values():
            for ids in sel.run_ids:
                self._planned.update(ids.values())
            for seed, rid in sel.chosen_runs.items():
                if sel.key in self.fresh and seed in sel.selection_seeds():
                    continue  # fresh_seeds: the run that won the selection is not reported
                self._chosen.setdefault(rid, []).append(sel)

    def __getattr__(self, name):
        return getattr(self.db, name)

    def runs(self, status: str | None = None) -> list[dict]:
        out = []
        for run in self.db.runs(status):
            sels = self._chosen.get(run["id"])
            if sels is None:  # a tried setting not chosen, or one no plan tries any more
                if run["id"] not in self._planned and not run["config"].get("tune"):
                    out.append(run)
                continue
            for sel in sels:
                row = dict(run)
                row["loss"] = sel.loss
                cfg = copy.deepcopy(run["config"])
                cfg.pop("tune", None)
                for key in sel.train_keys:
                    cfg.setdefault("train", {})[key] = MASK
                row["config"] = cfg
                out.append(row)
        return out


def fresh_cells(db) -> set:
    """Keys (backbone, head, loss) of the stored cells planned with ``tune.fresh_seeds``."""
    return {(c["backbone"], c["head"], c["loss"]) for c in stored_plan(db).values()
            if c.get("fresh_seeds")}


def fresh_note(selections: dict, fresh: set) -> str | None:
    """What ``tune.fresh_seeds`` did and what it costs, for the leaderboard's notes."""
    sels = [s for k, s in selections.items() if k in fresh]
    if not sels:
        return None
    sels = sorted(sels, key=lambda x: len(x.seeds))  # the suite's seeds first
    n = len(sels[0].seeds)
    more = sorted({len(x.seeds) for x in sels} - {n})
    also = (f" (cells with {', '.join(map(str, more))} seeds: theirs after the first)"
            if more else "")
    return (f"fresh_seeds: each tuned loss is reported on seeds {sels[0].seeds[1:]}{also}, the "
            f"selection run on seed {sels[0].seeds[0]} left out (it won its cell on validation: "
            f"a small winner's curse if kept). Cost: {n - 1} of {n} seeds reported, so the "
            f"seed term's variance of a mean is {n / (n - 1):.2f}x (SE {((n / (n - 1)) ** 0.5):.2f}x) "
            f"that of {n} seeds and its own df {n - 2} instead of {n - 1}; the same runs, no "
            "extra GPU time (list one more seed to keep the reported count).")


def settings_text(values: dict | None) -> str:
    """``lr=0.001, alpha=0.1`` (train keys without their prefix)."""
    if not values:
        return "" if values is None else "-"
    return ", ".join(f"{k.removeprefix('train.')}={_short(v)}" for k, v in values.items())


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_short(x)}" for k, x in v.items()
                              if x not in (None, 0, 0.0)) + "}"
    return str(v)


def annotate(df, selections: dict, fresh: set = frozenset()):
    """Add ``setting`` (the chosen values), ``budget`` and ``val_auc`` (the chosen
    setting's validation score) to a leaderboard frame's tuned rows."""
    if df.empty or not selections:
        return df
    by = {k: s for k, s in selections.items()}
    chosen, budget, val = [], [], []
    for b, h, loss in zip(df["backbone"], df["head"], df["loss"], strict=True):
        sel = by.get((b, h, loss))
        chosen.append(settings_text(sel.chosen_values) if sel else "")
        budget.append(_budget_text(sel) if sel else "")
        val.append(sel.chosen_val_auc if sel else math.nan)
    df = df.copy()
    df["setting"], df["budget"], df["val_auc"] = chosen, budget, val
    df.attrs["notes"] = list(df.attrs.get("notes", [])) + [
        "Tuned: each loss's row is its chosen setting (the best validation mean AUC of its "
        "`budget` settings; val AUC = that score; selection never reads test data); the "
        "statistics use the chosen setting's runs only. --all-settings lists every setting."]
    if fresh:
        note = fresh_note(selections, fresh)
        if note:
            df.attrs["notes"].append(note)
    return df


def _budget_text(sel: Selection) -> str:
    text = str(sel.budget)
    if sel.space > sel.budget:
        text += f" of {sel.space}"
    return text


def settings_frame(db, selections: dict | None = None):
    """Every tried setting: validation score (what selection used) and mean test AUC."""
    import pandas as pd

    selections = selected(db) if selections is None else selections
    test: dict[str, float] = {}
    for m in db.metrics():
        if m["name"] == "mean_auc" and not m["finding"] and m["value"] is not None:
            test[m["run_id"]] = float(m["value"])
    status = {r["id"]: r["status"] for r in db.runs()}
    rows = []
    for sel in selections.values():
        for pos, idx in enumerate(sel.indices):
            ids = sel.run_ids[pos]
            done = [rid for rid in ids.values() if status.get(rid) == "finished"]
            failed = sum(status.get(rid) == "failed" for rid in ids.values())
            tests = [test[r] for r in done if r in test]
            rows.append({
                "backbone": sel.backbone, "head": sel.head, "loss": sel.loss,
                "setting": settings_text(sel.values[pos]), "index": idx,
                "chosen": idx == sel.chosen, "runs": len(done), "failed": failed,
                "val_auc": sel.val_auc[pos], "val_status": sel.status[pos],
                "test_auc": sum(tests) / len(tests) if tests else math.nan,
                "budget": sel.budget, "space": sel.space, "stages": sel.stages})
    return pd.DataFrame(rows)


def render_settings(db, fmt: str = "text", selections: dict | None = None) -> str:
    """``--all-settings``: one table per (backbone, head) of every setting tried."""
    df = settings_frame(db, selections)
    if df.empty:
        return "no tuned cells in this results.db\n"
    if fmt == "csv":
        return df.to_csv(index=False)
    groups = []
    for (backbone, head), group in df.groupby(["backbone", "head"], sort=False):
        shown = group.assign(
            chosen=["*" if c else "" for c in group["chosen"]],
            val=[f"{v:.4f}" if v == v else s for v, s in zip(group["val_auc"],
                                                             group["val_status"], strict=True)],
            test=[f"{v:.4f}" if v == v else "" for v in group["test_auc"]],
            budget=[f"{b}" + (f" of {n}" if n > b else "") for b, n in
                    zip(group["budget"], group["space"], strict=True)],
        )[["loss", "setting", "chosen", "val", "test", "runs", "budget"]]
        shown.columns = ["loss", "setting", "chosen", "val AUC (selection)", "test AUC",
                         "runs", "budget"]
        groups.append((f"{backbone} / {head}: every setting tried", shown))
    parts = titled_tables(groups, fmt)
    note = ("val AUC: the selection score (validation mean AUC of the kept epoch, first seed; "
            "mean over seeds with stages: 1), the only number selection reads; test AUC: mean "
            "over the setting's finished runs of the stored test mean AUC (every class), shown "
            "for inspection; * = chosen.")
    parts.append(f"<p class='note'>{note}</p>" if fmt == "html" else note + "\n")
    return "\n".join(parts)
