"""Selection from stored validation AUCs (meta ``tune`` of results.db) and the
leaderboard's view of a tuned suite (:class:`SelectedRuns`, the settings table)."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from mlbench.suite.tuning import Plan, _cell_id

META_KEY = "tune"
MASK = "(tuned)"  # a tuned train value as the leaderboard's setup sees it


# ------------------------------------------------------------------ selection
@dataclass
class Selection:
    """A cell's settings, their validation scores and the chosen one (None: not yet)."""

    backbone: str
    head: str
    loss: str
    budget: int
    space: int
    stages: int
    seeds: list
    values: list[dict]  # per setting
    indices: list[int]  # per setting, its position in the space
    run_ids: list[dict]  # per setting: seed -> run id
    val_auc: list[float]  # per setting: mean validation AUC over its selection runs
    status: list[str]  # per setting: finished | failed | pending
    chosen: int | None  # index (in the space) of the chosen setting
    train_keys: list = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return (self.backbone, self.head, self.loss)

    def _pos(self) -> int | None:
        return None if self.chosen is None else self.indices.index(self.chosen)

    @property
    def chosen_values(self) -> dict | None:
        pos = self._pos()
        return None if pos is None else self.values[pos]

    @property
    def chosen_runs(self) -> dict:
        """seed -> run id of the chosen setting (every seed the plan has)."""
        pos = self._pos()
        return {} if pos is None else self.run_ids[pos]

    @property
    def chosen_val_auc(self) -> float:
        pos = self._pos()
        return math.nan if pos is None else self.val_auc[pos]

    def selection_seeds(self) -> list:
        return list(self.seeds) if self.stages == 1 else list(self.seeds[:1])

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "values": self.chosen_values,
                "val_auc": [None if math.isnan(v) else v for v in self.val_auc],
                "status": self.status, "selection_seeds": self.selection_seeds()}


def stored_plan(db) -> dict:
    """Cell id -> stored cell (meta ``tune``), empty when the results have no tuning."""
    try:
        return (db.get_meta(META_KEY) or {}).get("cells", {})
    except Exception:  # noqa: BLE001 - a database without the meta table: nothing tuned
        return {}


def store_plan(db, plan: Plan) -> None:
    """Add (or replace) the plan's cells in meta ``tune``; other cells are kept."""
    stored = db.get_meta(META_KEY) or {"cells": {}}
    for cid, cell in plan.to_json().items():
        old = stored["cells"].get(cid, {})
        if old.get("settings") == cell["settings"] and "selection" in old:
            cell["selection"] = old["selection"]
        stored["cells"][cid] = cell
    db.set_meta(META_KEY, stored)


def store_selection(db, selections: dict) -> None:
    """Write each cell's selection (chosen index and values, validation AUCs) into meta."""
    stored = db.get_meta(META_KEY) or {"cells": {}}
    for key, sel in selections.items():
        cell = stored["cells"].get(_cell_id(key))
        if cell is not None:
            cell["selection"] = {**sel.to_json(), "at": time.time()}
    db.set_meta(META_KEY, stored)


def val_aucs(db, ids) -> tuple[dict, dict]:
    """(run id -> validation mean AUC, run id -> status) of ``ids``. The validation AUC is
    the stored ``val_mean_auc`` (the kept epoch's), else the best of the epochs' values."""
    ids = set(ids)
    status = {r["id"]: r["status"] for r in db.runs() if r["id"] in ids}
    out = {}
    for m in db.metrics():
        if m["name"] == "val_mean_auc" and m["run_id"] in ids and m["value"] is not None:
            out[m["run_id"]] = float(m["value"])
    for rid, st in status.items():
        if st == "finished" and rid not in out:
            vals = [e.get("val_mean_auc") for e in db.epochs(rid)]
            vals = [float(v) for v in vals if isinstance(v, (int, float)) and v == v]
            if vals:
                out[rid] = max(vals)
    return out, status


def selected(db, plan: Plan | None = None) -> dict:
    """Cell key (backbone, head, loss) -> :class:`Selection`, from validation AUCs only.

    Args:
        db: an open ``ResultsDB`` (read-only is enough).
        plan: the plan (default: the one stored in results.db).
    """
    cells = plan.to_json() if plan is not None else stored_plan(db)
    ids = [rid for c in cells.values() for s in c["settings"] for rid in s["runs"].values()]
    aucs, status = val_aucs(db, ids)
    out = {}
    for c in cells.values():
        seeds = c["seeds"] if c["stages"] == 1 else c["seeds"][:1]
        scores, states = [], []
        for s in c["settings"]:
            rids = [s["runs"][str(seed)] for seed in seeds]
            st = [status.get(r, "pending") for r in rids]
            if all(x == "finished" for x in st):
                vals = [aucs.get(r, math.nan) for r in rids]
                states.append("finished")
                scores.append(sum(vals) / len(vals))
            else:
                states.append("failed" if "failed" in st and all(
                    x in ("finished", "failed") for x in st) else "pending")
                scores.append(math.nan)
        chosen = None
        if "pending" not in states:
            best = None
            for s, score in zip(c["settings"], scores, strict=True):
                if score == score and (best is None or score > best[1]):
                    best = (s["index"], score)
            chosen = best[0] if best else None
        sel = Selection(
            c["backbone"], c["head"], c["loss"], c["budget"], c["space"], c["stages"],
            list(c["seeds"]), [s["values"] for s in c["settings"]],
            [s["index"] for s in c["settings"]],
            [{int(k): v for k, v in s["runs"].items()} for s in c["settings"]], scores, states,
            chosen, list(c.get("train_keys", [])))
        out[sel.key] = sel
    return out


# ------------------------------------------------------------------ the leaderboard's view
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
        for sel in self.selections.values():
            for ids in sel.run_ids:
                self._planned.update(ids.values())
            for rid in sel.chosen_runs.values():
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


def annotate(df, selections: dict):
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
    from tabulate import tabulate

    tablefmt = {"text": "simple", "md": "github", "html": "html"}[fmt]
    parts = []
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
        body = tabulate(shown, headers="keys", tablefmt=tablefmt, showindex=False,
                        disable_numparse=True)
        title = f"{backbone} / {head}: every setting tried"
        parts.append(f"### {title}\n\n{body}\n" if fmt == "md"
                     else f"<h3>{title}</h3>\n{body}" if fmt == "html" else f"== {title} ==\n{body}\n")
    note = ("val AUC: the selection score (validation mean AUC of the kept epoch, first seed; "
            "mean over seeds with stages: 1), the only number selection reads; test AUC: mean "
            "over the setting's finished runs of the stored test mean AUC (every class), shown "
            "for inspection; * = chosen.")
    parts.append(f"<p class='note'>{note}</p>" if fmt == "html" else note + "\n")
    return "\n".join(parts)
