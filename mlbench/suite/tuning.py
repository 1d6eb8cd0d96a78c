"""What to try: the tuning plan (pure), with an equal budget per loss, selected on
validation (the suite's ``tune`` key). It depends on the suite's lower modules only (schema,
identity, grid), so ``load_suite`` builds a suite's plan without the execution layer; what
was chosen is :mod:`mlbench.suite.selection`, the two stages run over the driver
(:mod:`mlbench.driver.tuned`), the tuned view is the leaderboard's.

A loss benchmark is fair when every loss gets the same chance: the same number of tried
settings, chosen by the same rule, on data the comparison does not use. The rule:

- **Space.** A loss's settings are the product of the suite's ``tune.train`` lists (shared
  by every loss: ``lr: [1e-3, 3e-4]``) and the lists of its own ``tune.loss`` entry, keyed
  by its ``grid.loss`` entry: keyword arguments of a single loss (``asl: {gamma_neg: [2, 4]}``),
  the ``{placeholders}`` of a composite string (``"bce+{alpha}*msml": {alpha: [0.05,
  0.1, 0.2]}``), or keyword arguments of a recipe's last stage's loss, keyed by the recipe's
  label (``"bce:10>aucm[lr=0.1,schedule=step]": {margin: [0.6, 1.0]}``).
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
- **Fresh seeds.** ``tune.fresh_seeds: true`` (stages 2, >= 3 seeds): the leaderboard
  reports each cell's chosen setting on the seeds after the first only; the selection run
  (seed ``seeds[0]``), which won its cell on validation, is left out of the estimate (its
  small winner's curse). The runs are the same; the cost is one reported seed fewer.
- **No test data.** Selection reads ``val_mean_auc`` (or, for an older results.db, the
  epochs' ``val_mean_auc``) and nothing else.

A setting's run is the resolved config (``train.lr`` set, the loss spec filled in), so its
run id is that of the same untuned run, and adding a value adds only its runs. The plan
(cells, settings, their run ids) and each cell's selection with its validation AUCs are
stored in ``results.db`` (meta ``tune``); the leaderboard reads them back
(``selection.selected``, the leaderboard's ``SelectedRuns``).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mlbench.suite.grid import Run, cell_seeds, expand, loss_label, normalise_loss
from mlbench.suite.identity import canonical_json
from mlbench.suite.schema import (
    SuiteError,
    as_list,
    check_section,
    normalise_augment,
    yaml_float,
)

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
    seeds: list  # the cell's seeds (``seeds.cells`` may give it more than the suite's)

    @property
    def key(self) -> tuple:
        return (self.backbone, self.head, self.loss)


@dataclass
class Plan:
    """The tuned suite: cells, seeds, stages, the tuned ``train`` keys."""

    cells: list[Cell]
    seeds: list[int]  # the suite's (``seeds.default``); a cell's own are ``Cell.seeds``
    stages: int
    train_keys: list[str] = field(default_factory=list)
    fresh_seeds: bool = False  # report seeds[1:] only (the selection run left out)

    def stage_one(self) -> list[Run]:
        """Every setting on the first seed (``stages: 1``: on every seed)."""
        return unique_runs(s.runs[seed] for c in self.cells for s in c.settings
                           for seed in (c.seeds if self.stages == 1 else c.seeds[:1]))

    def stage_two(self, selections: dict) -> list[Run]:
        """The chosen setting of each cell with a choice, on the remaining seeds."""
        if self.stages == 1:
            return []
        out = []
        for c in self.cells:
            sel = selections.get(c.key)
            if sel is not None and sel.chosen is not None:
                setting = next(s for s in c.settings if s.index == sel.chosen)
                out += [setting.runs[seed] for seed in c.seeds[1:]]
        return unique_runs(out)

    def every_run(self) -> list[Run]:
        return unique_runs(s.runs[seed] for c in self.cells for s in c.settings for seed in c.seeds)

    def runs_per_cell(self, cell: Cell) -> int:
        n, s = len(cell.settings), len(cell.seeds)
        return n * s if self.stages == 1 else n + s - 1

    def total_runs(self) -> int:
        return sum(self.runs_per_cell(c) for c in self.cells)

    def to_json(self) -> dict:
        """The plan as stored in results.db (meta ``tune``): cell key -> cell."""
        return {cell_id(c.key): {
            "backbone": c.backbone, "head": c.head, "loss": c.loss, "budget": c.budget,
            "space": c.space, "stages": self.stages, "seeds": list(c.seeds),
            "train_keys": list(self.train_keys), "fresh_seeds": self.fresh_seeds,
            "settings": [{"index": s.index, "values": s.values,
                          "runs": {str(seed): r.id for seed, r in s.runs.items()}}
                         for s in c.settings],
        } for c in self.cells}

    def describe(self) -> str:
        """Run counts per stage (``--dry-run``)."""
        budgets = sorted({c.budget for c in self.cells})
        s = len(self.seeds)
        b = "/".join(map(str, budgets))
        more = [c for c in self.cells if c.seeds != self.seeds]
        cells = (f"; {len(more)} cell(s) with more seeds (seeds.cells): "
                 + ", ".join(f"{c.backbone}/{c.head}/{c.loss} {c.seeds}" for c in more)
                 ) if more else ""
        if self.stages == 1:
            return (f"tune: {len(self.cells)} cells x {b} settings x {s} seeds "
                    f"= {self.total_runs()} runs (stages: 1){cells}")
        fresh = (f"; reported: seeds {self.seeds[1:]} (fresh_seeds: the selection run on seed "
                 f"{self.seeds[0]} left out)") if self.fresh_seeds else ""
        second = sum(len(c.seeds) - 1 for c in self.cells)
        return (f"tune: stage 1 = {len(self.stage_one())} runs (every setting on seed "
                f"{self.seeds[0]}); stage 2 = {second} runs (each cell's "
                f"setting with the best validation AUC on seeds {self.seeds[1:]}); "
                f"budget {b} + {s} seeds - 1 per cell, {self.total_runs()} runs in all"
                f"{cells}{fresh}")


def unique_runs(runs) -> list[Run]:
    """``runs`` without repeats (by run id), in their first order."""
    seen, out = set(), []
    for r in runs:
        if r.id not in seen:
            seen.add(r.id)
            out.append(r)
    return out


def cell_id(key: tuple) -> str:
    """The key of a (backbone, head, loss) cell in meta ``tune``: its JSON."""
    return json.dumps(list(key))


def plan_suite(cfg: dict, train_schema: dict | None = None) -> Plan | None:
    """The tuning plan of a validated suite config, or None when ``tune`` has no values.

    Args:
        cfg: the suite after ``check_section`` (``tune`` filled with its defaults).
        train_schema: the ``train`` keys (each tuned value is checked like the key itself);
            None skips those checks (``load_suite(..., train_keys=False)``).

    Raises:
        SuiteError: names the ``tune`` key at fault.
    """
    tune = cfg.get("tune") or {}
    grid_losses = [normalise_loss(s, f"grid.loss[{i}]")
                   for i, s in enumerate(as_list(cfg["grid"]["loss"]))]
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

    expand(cfg)  # the axes' own checks (types, empty lists, seeds per cell)
    per_cell = cell_seeds(cfg)
    seeds = per_cell.default
    cells = []
    for backbone, head in itertools.product(as_list(cfg["grid"]["backbone"]),
                                            as_list(cfg["grid"]["head"])):
        for lab in dict.fromkeys(labels):
            settings = []
            own = per_cell.of(backbone, head, lab)
            for i in chosen[lab]:
                values, train_values, loss = spaces[lab][i]
                runs = _setting_runs(cfg, backbone, head, loss, train_values, lab, values, own)
                settings.append(Setting(i, values, runs))
            cells.append(Cell(backbone, head, lab, budgets[lab], len(spaces[lab]), settings,
                              list(own)))
    fresh = bool(tune.get("fresh_seeds", False))
    if fresh and (tune.get("stages", 2) != 2 or len(seeds) < 3):
        raise SuiteError("`tune.fresh_seeds` reports the seeds after the selection seed: it "
                         "needs `tune.stages: 2` and >= 3 seeds (2 reported, for a seed term); "
                         f"got stages {tune.get('stages', 2)} and {len(seeds)} seed(s)")
    return Plan(cells, seeds, tune.get("stages", 2), [k for k, _ in train_space], fresh)


def _values(raw: Any, where: str) -> list:
    vals = raw if isinstance(raw, list) else [raw]
    if not vals:
        raise SuiteError(f"`{where}` is an empty list; give at least one value")
    vals = [yaml_float(v) for v in vals]
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
                v = check_section({key: v}, {key: schema[key]}, f"tune.train[{i}]")[key]
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
    if isinstance(spec, dict) and "stages" in spec:
        return _recipe_space(spec, label, params)
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


def _recipe_space(spec: dict, label: str, params: dict) -> list[tuple[dict, Any]]:
    """A recipe's settings: keyword arguments of its last stage's loss (the stage that makes
    the recipe, e.g. AUC-M's ``margin`` after the BCE warm-up)."""
    where = f"tune.loss.{label}"
    last = spec["stages"][-1]["loss"]
    if isinstance(last, str) and not _NAME.fullmatch(last) or isinstance(last, list):
        raise SuiteError(f"`{where}`: a recipe's settings are keyword arguments of its last "
                         f"stage's loss, which must be one loss (a name or {{name: ...}}), "
                         f"got {loss_label(last)!r}")
    for name in params:
        if name in ("name", "weight", "labels", "stages", "epochs", "lr", "schedule"):
            raise SuiteError(f"`{where}.{name}`: a recipe tunes keyword arguments of its last "
                             f"stage's loss ({loss_label(last)}), not `{name}`")
    out = []
    for values, loss in _loss_space(last, label, params):  # the single loss's settings
        stages = copy.deepcopy(spec["stages"])
        stages[-1]["loss"] = loss
        out.append((values, {"stages": stages}))
    return out


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
                  label: str, values: dict, seeds: list) -> dict:
    """seed -> Run of one setting on the cell's ``seeds``: the suite's config with the values
    filled in."""
    one = copy.deepcopy(cfg)
    one["grid"] = {"backbone": [backbone], "head": [head], "loss": [loss]}
    one["seeds"] = list(seeds)
    for key, v in train_values.items():
        one["train"][key.removeprefix("train.")] = copy.deepcopy(v)
    out = {}
    for run in expand(one):
        run.config["tune"] = {"loss": label, "values": values}
        out[run.seed] = run
    return out
