"""Tuning with an equal budget per loss, selected on validation (the suite's ``tune`` key).

A loss benchmark is fair when every loss gets the same chance: the same number of tried
settings, chosen by the same rule, on data the comparison does not use. The rule:

- **Space.** A loss's settings are the product of the suite's ``tune.train`` lists (shared
  by every loss: ``lr: [1e-3, 3e-4]``) and the lists of its own ``tune.loss`` entry, keyed
  by its ``grid.loss`` entry: keyword arguments of a single loss (``asl: {gamma_neg: [2, 4]}``)
  or the ``{placeholders}`` of a composite string (``"bce+{alpha}*msml": {alpha: [0.05,
  0.1, 0.2]}``).
- **Budget.** Every loss tries ``tune.budget`` settings (default: the smallest space of the
  grid's losses, so a loss without settings of its own tries the whole shared grid);
  ``tune.budget_per_loss`` gives a loss another budget (the leaderboard shows each loss's).
  A loss whose space is as large as its budget tries every setting; a larger space gives a
  seeded draw of ``budget`` settings without replacement: each setting is ranked by the
  SHA-256 of (``tune.seed``, loss entry, its values) and the first ``budget`` are tried. The
  draw is the same for every backbone and head, and stable when values are added (a drawn
  setting leaves the draw only when a new one ranks before it). A space smaller than its
  budget is an error (the loss could not get the same number of tries).
- **Stages.** ``tune.stages: 2`` (default): every setting on the first seed; then the setting
  with the best validation mean AUC (``val_mean_auc``: the kept epoch's, as ``engine.fit``
  keeps it; ties go to the earlier setting of the space) on the remaining seeds:
  ``budget + seeds - 1`` runs per (backbone, head, loss) cell. ``tune.stages: 1``: every
  setting on every seed (``budget x seeds``), selected by the mean validation AUC over seeds.
  A setting with a failed selection run cannot be chosen; a cell whose selection runs are
  not all done has no choice yet.
- **No test data.** Selection reads ``val_mean_auc`` (or, for an older results.db, the
  epochs' ``val_mean_auc``) and nothing else.

A setting's run is the resolved config (``train.lr`` set, the loss spec filled in), so its
run id is that of the same untuned run, and adding a value adds only its runs. The plan
(cells, settings, their run ids) and each cell's selection with its validation AUCs are
stored in ``results.db`` (meta ``tune``); the leaderboard reads them back
(:func:`selected`, :class:`SelectedRuns`).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from mlbench.suite.identity import canonical_json
from mlbench.suite.load import Run, expand, loss_label, normalise_loss
from mlbench.suite.schema import (
    GRID_AXES,
    SuiteError,
    _as_list,
    _check_section,
    _yaml_float,
    normalise_augment,
)

META_KEY = "tune"
MASK = "(tuned)"  # a tuned train value as the leaderboard's setup sees it
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[A-Za-z0-9_]+")


# ------------------------------------------------------------------ plan
@dataclass
class Setting:
    """One tried setting of a cell: its values and its run per seed."""

    index: int  # position in the loss's space (ties go to the smaller)
    values: dict  # {"train.lr": 0.001, "alpha": 0.1}
    runs: dict  # seed -> Run


@dataclass
class Cell:
    """One (backbone, head, grid loss entry) and the settings it tries."""

    backbone: str
    head: str
    loss: str  # the grid entry's label, e.g. "bce+{alpha}*msml"
    budget: int
    space: int  # size of the loss's space (budget < space: drawn)
    settings: list[Setting]

    @property
    def key(self) -> tuple:
        return (self.backbone, self.head, self.loss)


@dataclass
class Plan:
    """The tuned suite: cells, seeds, stages, the tuned ``train`` keys."""

    cells: list[Cell]
    seeds: list[int]
    stages: int
    train_keys: list[str] = field(default_factory=list)

    def stage_one(self) -> list[Run]:
        """Every setting on the first seed (``stages: 1``: on every seed)."""
        seeds = self.seeds if self.stages == 1 else self.seeds[:1]
        return _unique(s.runs[seed] for c in self.cells for s in c.settings for seed in seeds)

    def stage_two(self, selections: dict) -> list[Run]:
        """The chosen setting of each cell with a choice, on the remaining seeds."""
        if self.stages == 1:
            return []
        out = []
        for c in self.cells:
            sel = selections.get(c.key)
            if sel is not None and sel.chosen is not None:
                setting = next(s for s in c.settings if s.index == sel.chosen)
                out += [setting.runs[seed] for seed in self.seeds[1:]]
        return _unique(out)

    def every_run(self) -> list[Run]:
        return _unique(s.runs[seed] for c in self.cells for s in c.settings for seed in self.seeds)

    def runs_per_cell(self, cell: Cell) -> int:
        n, s = len(cell.settings), len(self.seeds)
        return n * s if self.stages == 1 else n + s - 1

    def total_runs(self) -> int:
        return sum(self.runs_per_cell(c) for c in self.cells)

    def to_json(self) -> dict:
        """The plan as stored in results.db (meta ``tune``): cell key -> cell."""
        return {_cell_id(c.key): {
            "backbone": c.backbone, "head": c.head, "loss": c.loss, "budget": c.budget,
            "space": c.space, "stages": self.stages, "seeds": list(self.seeds),
            "train_keys": list(self.train_keys),
            "settings": [{"index": s.index, "values": s.values,
                          "runs": {str(seed): r.id for seed, r in s.runs.items()}}
                         for s in c.settings],
        } for c in self.cells}

    def describe(self) -> str:
        """Run counts per stage (``--dry-run``)."""
        budgets = sorted({c.budget for c in self.cells})
        s = len(self.seeds)
        b = "/".join(map(str, budgets))
        if self.stages == 1:
            return (f"tune: {len(self.cells)} cells x {b} settings x {s} seeds "
                    f"= {self.total_runs()} runs (stages: 1)")
        return (f"tune: stage 1 = {len(self.stage_one())} runs (every setting on seed "
                f"{self.seeds[0]}); stage 2 = {len(self.cells) * (s - 1)} runs (each cell's "
                f"setting with the best validation AUC on seeds {self.seeds[1:]}); "
                f"budget {b} + {s} seeds - 1 per cell, {self.total_runs()} runs in all")


def _unique(runs) -> list[Run]:
    seen, out = set(), []
    for r in runs:
        if r.id not in seen:
            seen.add(r.id)
            out.append(r)
    return out


def _cell_id(key: tuple) -> str:
    return json.dumps(list(key))


def plan_suite(cfg: dict, train_schema: dict | None = None) -> Plan | None:
    """The tuning plan of a validated suite config, or None when ``tune`` has no values.

    Args:
        cfg: the suite after ``_check_section`` (``tune`` filled with its defaults).
        train_schema: the ``train`` keys (each tuned value is checked like the key itself);
            None skips those checks (``load_suite(..., train_keys=False)``).

    Raises:
        SuiteError: names the ``tune`` key at fault.
    """
    tune = cfg.get("tune") or {}
    grid_losses = [normalise_loss(s, f"grid.loss[{i}]")
                   for i, s in enumerate(_as_list(cfg["grid"]["loss"]))]
    labels = [loss_label(s) for s in grid_losses]
    train_space = _train_space(tune.get("train") or {}, train_schema)
    entries = _loss_entries(tune.get("loss") or {}, labels)
    templates = [lab for lab, s in zip(labels, grid_losses, strict=True)
                 if isinstance(s, str) and _PLACEHOLDER.search(s)]
    if not train_space and not entries:
        if templates:
            raise SuiteError(f"`grid.loss` entry {templates[0]!r} has placeholders; give their "
                             f"values in `tune.loss` ({templates[0]!r}: {{name: [values]}})")
        return None
    spaces = {}
    for lab, spec in zip(labels, grid_losses, strict=True):
        if lab in spaces:
            continue
        own = _loss_space(spec, lab, entries.get(lab, {}))
        spaces[lab] = [({**tv, **lv}, tv, loss) for tv in _product(train_space)
                       for lv, loss in own]
    budgets = _budgets(tune, spaces)
    seed = tune.get("seed", 0)
    chosen = {lab: _draw(len(spaces[lab]), budgets[lab], seed, lab, spaces[lab]) for lab in spaces}

    expand(cfg)  # the axes' own checks (types, empty lists)
    seeds = _as_list(cfg["seeds"])
    cells = []
    for backbone, head in itertools.product(_as_list(cfg["grid"]["backbone"]),
                                            _as_list(cfg["grid"]["head"])):
        for lab in dict.fromkeys(labels):
            settings = []
            for i in chosen[lab]:
                values, train_values, loss = spaces[lab][i]
                runs = _setting_runs(cfg, backbone, head, loss, train_values, lab, values)
                settings.append(Setting(i, values, runs))
            cells.append(Cell(backbone, head, lab, budgets[lab], len(spaces[lab]), settings))
    return Plan(cells, seeds, tune.get("stages", 2), [k for k, _ in train_space])


def _values(raw: Any, where: str) -> list:
    vals = raw if isinstance(raw, list) else [raw]
    if not vals:
        raise SuiteError(f"`{where}` is an empty list; give at least one value")
    vals = [_yaml_float(v) for v in vals]
    seen = set()
    for v in vals:
        text = canonical_json(v)
        if text in seen:
            raise SuiteError(f"`{where}` lists {v!r} twice")
        seen.add(text)
    return vals


def _train_space(space: dict, schema: dict | None) -> list[tuple[str, list]]:
    out = []
    for key, raw in space.items():
        where = f"tune.train.{key}"
        if schema is not None and key not in schema:
            raise SuiteError(f"unknown key `{where}`; valid keys of `train`: {sorted(schema)}")
        vals = _values(raw, where)
        checked = []
        for i, v in enumerate(vals):
            if schema is not None:  # the key's own types, choices and bounds
                v = _check_section({key: v}, {key: schema[key]}, f"tune.train[{i}]")[key]
            if key == "augment":
                v = normalise_augment(v, f"{where}[{i}]")
            checked.append(v)
        out.append((key, checked))
    return out


def _loss_entries(entries: dict, labels: list[str]) -> dict:
    out = {}
    for key, params in entries.items():
        label = re.sub(r"\s+", "", key) if isinstance(key, str) else key
        if label not in labels:
            raise SuiteError(f"`tune.loss.{key}` is not a `grid.loss` entry; entries: {labels}")
        if not isinstance(params, dict) or not params:
            raise SuiteError(f"`tune.loss.{key}` must map a keyword argument or a "
                             "{placeholder} of the loss to a list of values")
        out[label] = {name: _values(v, f"tune.loss.{key}.{name}") for name, v in params.items()}
    return out


def _product(space: list[tuple[str, list]] | dict) -> list[dict]:
    items = list(space.items()) if isinstance(space, dict) else space
    keys = [k for k, _ in items]
    prefix = "" if isinstance(space, dict) else "train."
    return [dict(zip([prefix + k for k in keys], combo, strict=True))
            for combo in itertools.product(*[v for _, v in items])]


def _number(v: Any, where: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SuiteError(f"`{where}`: a term weight must be a number, got {v!r}")
    return str(v) if isinstance(v, int) else repr(float(v))


def _loss_space(spec: Any, label: str, params: dict) -> list[tuple[dict, Any]]:
    """(values, resolved loss spec) for every combination of a loss's own values."""
    where = f"tune.loss.{label}"
    holes = _PLACEHOLDER.findall(spec) if isinstance(spec, str) else []
    if holes:
        missing = sorted(set(holes) - set(params))
        extra = sorted(set(params) - set(holes))
        if missing:
            raise SuiteError(f"`grid.loss` entry {label!r}: no values for {{{missing[0]}}} "
                             f"in `{where}`")
        if extra:
            raise SuiteError(f"`{where}.{extra[0]}` is not a placeholder of {label!r} "
                             f"(placeholders: {sorted(set(holes))})")
        out = []
        for values in _product(params):
            text = _PLACEHOLDER.sub(lambda m, v=values: _number(v[m.group(1)],
                                                                 f"{where}.{m.group(1)}"), spec)
            out.append((values, text))
        return out
    if not params:
        return [({}, spec)]
    if isinstance(spec, str) and not _NAME.fullmatch(spec):
        raise SuiteError(f"`{where}`: to tune a composite's weights write them as placeholders "
                         f"in `grid.loss`, e.g. 'bce+{{alpha}}*msml' with {{alpha: [0.05, 0.1]}}")
    if isinstance(spec, list):
        raise SuiteError(f"`{where}`: the list form of a composite cannot be tuned; write it "
                         "as a string with placeholders, e.g. 'bce+{alpha}*msml'")
    base = {"name": spec} if isinstance(spec, str) else dict(spec)
    for name in params:
        if name in ("name", "weight"):
            raise SuiteError(f"`{where}.{name}`: not a keyword argument of the loss")
    return [(values, {**base, **values}) for values in _product(params)]


def _budgets(tune: dict, spaces: dict) -> dict:
    sizes = {lab: len(s) for lab, s in spaces.items()}
    default = tune.get("budget") or min(sizes.values())
    per = {}
    for key, n in (tune.get("budget_per_loss") or {}).items():
        label = re.sub(r"\s+", "", key) if isinstance(key, str) else key
        if label not in sizes:
            raise SuiteError(f"`tune.budget_per_loss.{key}` is not a `grid.loss` entry; "
                             f"entries: {sorted(sizes)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SuiteError(f"`tune.budget_per_loss.{key}` must be an int >= 1, got {n!r}")
        per[label] = n
    out = {}
    for lab, size in sizes.items():
        b = per.get(lab, default)
        if b > size:
            where = (f"tune.budget_per_loss.{lab}" if lab in per
                     else "tune.budget" if tune.get("budget") else "tune")
            raise SuiteError(
                f"`{where}`: loss {lab!r} has {size} setting(s), fewer than its budget of {b}, "
                "so it could not try as many as the others; add values, lower the budget, or "
                "give it its own with tune.budget_per_loss")
        out[lab] = b
    return out


def _draw(size: int, budget: int, seed: int, label: str, space: list) -> list[int]:
    """Indices of the settings tried: all of them, or the ``budget`` first by a seeded hash."""
    if budget >= size:
        return list(range(size))
    rank = sorted(range(size), key=lambda i: hashlib.sha256(
        canonical_json([seed, label, space[i][0]]).encode()).hexdigest())
    return sorted(rank[:budget])


def _setting_runs(cfg: dict, backbone: str, head: str, loss: Any, train_values: dict,
                  label: str, values: dict) -> dict:
    """seed -> Run of one setting: the suite's config with the values filled in."""
    one = copy.deepcopy(cfg)
    one["grid"] = {"backbone": [backbone], "head": [head], "loss": [loss]}
    for key, v in train_values.items():
        one["train"][key.removeprefix("train.")] = copy.deepcopy(v)
    out = {}
    for run in expand(one):
        run.config["tune"] = {"loss": label, "values": values}
        out[run.seed] = run
    return out


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


# ------------------------------------------------------------------ running both stages
def _keep(runs: list[Run], only: dict | None) -> list[Run]:
    """``--only`` without the "matches no run" error (a stage may have none of them)."""
    for key, wanted in (only or {}).items():
        if key in GRID_AXES:
            runs = [r for r in runs if str(getattr(r, key)) in wanted]
    return runs


def filter_plan(plan: Plan, only: dict | None) -> list[Run]:
    """Stage-one runs matching ``--only`` (its values are checked against every run)."""
    from mlbench.suite import filter_runs

    if only:
        filter_runs(plan.every_run(), only)  # raises when a value matches no run at all
    return _keep(plan.stage_one(), only)


def run_tuned(suite, runs: list[Run] | None = None, *, only: dict | None = None,
              progress: bool = True, say: bool = True, run_suite=None, **kwargs) -> dict:
    """Run a tuned suite: stage 1, selection on validation, stage 2 (resumable).

    Args:
        suite: a loaded suite with ``suite.plan``.
        runs: the stage-one runs to do (default ``suite.plan.stage_one()``).
        only: ``--only`` filters, applied to stage two as well.
        progress: progress bars.
        say: print a line per stage (run counts).
        run_suite: the driver's ``run_suite`` (default ``mlbench.driver.run_suite``).
        kwargs: passed to ``run_suite`` (workers, executor, retry_failed, ...).

    Returns:
        counts over both stages, ``seconds``, ``runs`` (every run of both stages),
        ``stage1``/``stage2`` (run counts) and ``selections``.
    """
    from mlbench.db import ResultsDB

    if run_suite is None:
        from mlbench.driver import run_suite
    plan = suite.plan
    t0 = time.perf_counter()
    first = list(runs) if runs is not None else plan.stage_one()
    with ResultsDB(suite.output) as db:
        store_plan(db, plan)
    if say:
        print(plan.describe(), flush=True)
    if first:
        run_suite(suite, first, progress=progress, **kwargs)
    second: list[Run] = []
    with ResultsDB(suite.output) as db:
        sel = selected(db, plan)
        store_selection(db, sel)
    if plan.stages == 2:
        second = _keep(plan.stage_two(sel), only)
        if say:
            print(f"tune: stage 2: {len(second)} runs (chosen settings on seeds "
                  f"{plan.seeds[1:]})", flush=True)
        if second:
            run_suite(suite, second, progress=progress, **kwargs)
    done = _unique(first + second)
    with ResultsDB(suite.output) as db:
        counts = db.counts([r.id for r in done])
        sel = selected(db, plan)
        store_selection(db, sel)
    return {**counts, "seconds": time.perf_counter() - t0, "runs": done,
            "stage1": len(first), "stage2": len(second), "selections": sel}


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
