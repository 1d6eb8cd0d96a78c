"""What was chosen: each tuned cell's setting, from the stored validation AUCs alone.

The plan (:mod:`mlbench.suite.tuning`) says what to try; this module reads back what the
runs gave and applies the rule (the best validation mean AUC; ties go to the earlier setting
of the space; a cell whose selection runs are not all done has no choice yet). The plan and
each cell's selection are kept in the results store's meta ``tune``. ``db`` is anything with
the results store's read methods (``runs``, ``metrics``, ``epochs``, ``get_meta``;
``set_meta`` to store): this module imports no store, driver or leaderboard.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from mlbench.suite.tuning import Plan, cell_id

META_KEY = "tune"


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
        cell = stored["cells"].get(cell_id(key))
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
