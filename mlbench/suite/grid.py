"""The grid: a suite config -> one ``Run`` per backbone x head x loss x seed.

Loss specs in canonical form and their labels, the ``Run`` and ``expand``. Below ``load``
(which reads and validates a suite file) and the tuning plan (:mod:`mlbench.suite.tuning`),
which both expand a validated config through it.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from mlbench.suite.identity import run_id
from mlbench.suite.schema import (
    OPTIONAL_KEYS,
    SEED_MAX,
    Key,
    SuiteError,
    as_list,
    check_section,
    yaml_float,
)


@dataclass
class Run:
    """One grid cell x seed: the resolved config and its stable id."""

    id: str
    config: dict = field(repr=False)

    @property
    def backbone(self) -> str:
        return self.config["backbone"]

    @property
    def head(self) -> str:
        return self.config["head"]

    @property
    def loss(self) -> str:
        """The grid's loss label; for a tuned run, its grid entry (``bce+{alpha}*msml``)."""
        tuned = self.config.get("tune")
        return tuned["loss"] if tuned else loss_label(self.config["loss"])

    @property
    def seed(self) -> int:
        return self.config["seed"]



def normalise_loss(spec: Any, where: str) -> Any:
    """Loss spec in its canonical form: strings without spaces, mappings as given."""
    if isinstance(spec, str):
        text = re.sub(r"\s+", "", spec)
        if not text:
            raise SuiteError(f"`{where}`: empty loss spec")
        return text
    if isinstance(spec, dict) and "stages" in spec:
        return {"stages": _normalise_stages(spec, where)}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise SuiteError(f"`{where}`: a loss mapping needs `name` (or `stages`, a recipe), "
                             f"got keys {sorted(spec)}")
        if "labels" in spec and spec["labels"] not in LABEL_CONTROLS:
            raise SuiteError(f"`{where}.labels`: the training labels a loss sees, one of "
                             f"{list(LABEL_CONTROLS)} (a control), got {spec['labels']!r}")
        return dict(spec)
    if isinstance(spec, list) and spec and all(isinstance(t, dict) for t in spec):
        terms = [normalise_loss(t, f"{where}[{i}]") for i, t in enumerate(spec)]
        if any("labels" in t for t in terms):
            raise SuiteError(f"`{where}`: `labels` belongs to a one-term mapping ({{name: bce, "
                             "labels: shuffled}), not to a term of a sum")
        return terms
    raise SuiteError(f"`{where}` must be a spec string like 'bce+0.1*msml' or a mapping, got {spec!r}")


# A recipe: ``{stages: [{loss: bce, epochs: 2}, {loss: aucm, lr: 0.1}]}`` -- the stages train
# one after the other on the same model (mlbench.train.Stage); each but the last names its
# epochs, the last takes the rest of train.epochs; lr / schedule override the run's for a stage.
STAGE_KEYS = ("loss", "epochs", "lr", "schedule")


def _normalise_stages(spec: dict, where: str) -> list[dict]:
    if set(spec) != {"stages"}:
        raise SuiteError(f"`{where}`: a recipe has the one key `stages`, got keys {sorted(spec)}")
    stages = spec["stages"]
    if not isinstance(stages, list) or len(stages) < 2:
        raise SuiteError(f"`{where}.stages` must be a list of at least 2 stages like "
                         f"{{loss: bce, epochs: 2}}, got {stages!r}")
    out = []
    for k, stage in enumerate(stages):
        at = f"{where}.stages[{k}]"
        if not isinstance(stage, dict) or "loss" not in stage:
            raise SuiteError(f"`{at}` must be a mapping with `loss` (and `epochs`), got {stage!r}")
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        if unknown:
            raise SuiteError(f"`{at}`: unknown key(s) {unknown}; a stage's keys: {list(STAGE_KEYS)}")
        loss = stage["loss"]
        if isinstance(loss, dict) and "stages" in loss:
            raise SuiteError(f"`{at}.loss`: a stage's loss cannot itself be a recipe")
        item = {"loss": normalise_loss(loss, f"{at}.loss")}
        last = k == len(stages) - 1
        if "epochs" in stage or not last:
            n = stage.get("epochs")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                need = "" if last else " (only the last stage may leave it out: it takes the rest)"
                raise SuiteError(f"`{at}.epochs` must be an int >= 1{need}, got {n!r}")
            item["epochs"] = n
        if "lr" in stage:
            lr = yaml_float(stage["lr"])
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
                raise SuiteError(f"`{at}.lr` must be a number > 0, got {stage['lr']!r}")
            item["lr"] = float(lr)
        if "schedule" in stage:
            if not isinstance(stage["schedule"], str):
                raise SuiteError(f"`{at}.schedule` must be a string, got {stage['schedule']!r}")
            item["schedule"] = stage["schedule"]
        out.append(item)
    return out


def stage_losses(spec: Any) -> list:
    """The loss specs a (normalised) grid entry trains with: its stages' or itself."""
    if isinstance(spec, dict) and "stages" in spec:
        return [stage["loss"] for stage in spec["stages"]]
    return [spec]


def check_recipe(spec: Any, epochs: int, where: str) -> None:
    """A recipe's stages fit in ``train.epochs`` (the last stage gets at least one epoch, or
    exactly what it names)."""
    if not (isinstance(spec, dict) and "stages" in spec):
        return
    named = [s.get("epochs") for s in spec["stages"]]
    fixed = sum(n for n in named if n is not None)
    ok = fixed == epochs if named[-1] is not None else fixed < epochs
    if not ok:
        rest = "add up to" if named[-1] is not None else "leave at least one epoch of"
        raise SuiteError(f"`{where}`: the stages' epochs {named} must {rest} train.epochs "
                         f"({epochs}); change the stages' epochs or train.epochs")


# ``labels:`` of a grid.loss mapping: what the loss is trained on instead of the true labels.
# "shuffled": the training split's label rows permuted over its images (seeded by the run's
# seed), a negative control: the model can learn nothing about the images, so its test AUC
# is at chance. Validation and test keep their true labels. Not a loss option: the worker
# takes it off the spec before ``losses.create_loss`` (:func:`training_labels`).
LABEL_CONTROLS = ("shuffled",)


def training_labels(spec: Any) -> tuple[Any, str | None]:
    """(the loss spec ``losses.create_loss`` takes, the ``labels`` control or None)."""
    if isinstance(spec, dict) and "labels" in spec:
        rest = {k: v for k, v in spec.items() if k != "labels"}
        return rest, spec["labels"]
    return spec, None


def loss_label(spec: Any) -> str:
    """Short display label of a loss spec (leaderboard row name); a recipe's stages joined
    by ``>``, each with its epochs and overrides: ``bce:2>aucm[lr=0.1]``."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and "stages" in spec:
        return ">".join(_stage_label(stage) for stage in spec["stages"])
    if isinstance(spec, list):
        return "+".join(_term_label(t) for t in spec)
    return _term_label(spec)


def _stage_label(stage: dict) -> str:
    text = loss_label(stage["loss"])
    if not isinstance(stage["loss"], str) or not re.fullmatch(r"[\w.]+", text):
        text = f"({text})"
    if "epochs" in stage:
        text += f":{stage['epochs']}"
    extra = {k: v for k, v in stage.items() if k in ("lr", "schedule")}
    if extra:
        text += "[" + ",".join(f"{k}={extra[k]}" for k in sorted(extra)) + "]"
    return text


def _term_label(term: dict) -> str:
    weight = term.get("weight")
    kwargs = {k: v for k, v in term.items() if k not in ("name", "weight")}
    text = term["name"]
    if kwargs:
        text += "(" + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")"
    return f"{weight}*{text}" if weight not in (None, 1, 1.0) else text




def _without_defaults(section: dict, name: str) -> dict:
    """A config section without the ``OPTIONAL_KEYS`` left at their defaults."""
    optional = OPTIONAL_KEYS.get(name, {})
    return {k: v for k, v in section.items() if not (k in optional and v in optional[k])}


def expand(cfg: dict) -> list[Run]:
    """One ``Run`` per backbone x head x loss x seed of its cell (:func:`cell_seeds`), in
    suite order (a cell's added seeds after the suite's)."""
    grid = cfg["grid"]
    backbones = as_list(grid["backbone"])
    heads = as_list(grid["head"])
    losses_ = [normalise_loss(s, f"grid.loss[{i}]") for i, s in enumerate(as_list(grid["loss"]))]
    for axis, values in (("grid.backbone", backbones), ("grid.head", heads)):
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise SuiteError(f"`{axis}[{i}]` must be str, got {v!r}")
        if not values:
            raise SuiteError(f"`{axis}` is empty")
    if not losses_:
        raise SuiteError("`grid.loss` is empty")
    seeds = cell_seeds(cfg)
    for i, spec in enumerate(losses_):
        check_recipe(spec, cfg["train"]["epochs"], f"grid.loss[{i}]")
    shared = {
        "dataset": cfg["dataset"],
        "model": _without_defaults(cfg["model"], "model"),
        "train": _without_defaults(cfg["train"], "train"),
        "eval": {"bootstrap": cfg["eval"]["bootstrap"]},
    }
    weights = backbone_weights(cfg["model"].get("weights"), backbones)
    runs, seen = [], set()
    for backbone, head, loss in itertools.product(backbones, heads, losses_):
        for seed in seeds.of(backbone, head, loss_label(loss)):
            config = {"suite": cfg["name"], "backbone": backbone, "head": head, "loss": loss,
                      "seed": seed, **copy.deepcopy(shared)}
            if isinstance(cfg["model"].get("weights"), dict):  # a run holds its backbone's file
                config["model"]["weights"] = weights[backbone]
            rid = run_id(config)
            if rid in seen:  # the same cell listed twice runs once
                continue
            seen.add(rid)
            runs.append(Run(rid, config))
    return runs


# ---------------------------------------------------------------- seeds per cell
# ``seeds`` is a list (every cell's seeds) or a mapping ``{default: [...], cells: [{only:
# {backbone: ..., head: ..., loss: [...]}, seeds: [...]}, ...]}``: the cells an entry's
# ``only`` matches (by the names ``--only`` uses; a key left out matches every value) run its
# seeds, which begin with ``default`` (a cell adds seeds: the selection seed of a tuned suite
# is every cell's first, and comparisons with other cells use the seeds they share). A run's
# id is its config's, which holds its seed, never the list: adding seeds to a cell adds runs.
SEEDS = {"default": Key((list, int), doc="every cell's seeds (the cells below add to them)"),
         "cells": Key((list,), [], doc="[{only: {backbone|head|loss: name or list}, seeds: "
                      "[...]}]: cells with more seeds")}
CELL_AXES = ("backbone", "head", "loss")


@dataclass(frozen=True)
class CellSeeds:
    """The seeds of every (backbone, head, loss label) cell of a suite."""

    default: list
    cells: dict  # (backbone, head, loss label) -> its seeds, every cell of the grid

    def of(self, backbone: str, head: str, loss: str) -> list:
        return self.cells.get((backbone, head, loss), self.default)

    @property
    def more(self) -> dict:
        """The cells whose seeds are not ``default``."""
        return {k: v for k, v in self.cells.items() if v != self.default}

    def to_json(self) -> dict:
        """Cell id (JSON of the key) -> seeds, as stored in results.db (meta ``seeds``)."""
        import json

        return {json.dumps(list(k)): list(v) for k, v in self.cells.items()}

    def describe(self) -> str:
        """``seeds [0, 1, 2]; 3 cells [0, 1, 2, 3, 4]: a/b/c, ...`` (the dry run)."""
        by: dict = {}
        for key, seeds in self.more.items():
            by.setdefault(tuple(seeds), []).append("/".join(key))
        text = f"seeds {list(self.default)}"
        for seeds, cells in by.items():
            text += f"; {len(cells)} cell(s) {list(seeds)}: {', '.join(cells)}"
        return text


def _check_seed_list(values, where: str) -> list:
    values = as_list(values)
    if not values:
        raise SuiteError(f"`{where}` is empty")
    for i, v in enumerate(values):
        if not isinstance(v, int) or isinstance(v, bool):
            raise SuiteError(f"`{where}[{i}]` must be int, got {v!r}")
        if not 0 <= v <= SEED_MAX:
            raise SuiteError(f"`{where}[{i}]` must be in [0, {SEED_MAX}] (a 32-bit seed, "
                             f"what every RNG of a run takes), got {v}")
    return values


def cell_seeds(cfg: dict) -> CellSeeds:
    """Every cell's seeds from a suite's ``seeds`` (a list, or the mapping above).

    Raises:
        SuiteError: names the key and the fix: an unknown axis in ``only``, a name not in the
            grid, an entry matching no cell, seeds that are not ints, that do not begin with
            ``seeds.default`` or repeat one, two entries giving one cell different seeds.
    """
    raw = cfg["seeds"]
    grid = cfg["grid"]
    backbones, heads = as_list(grid["backbone"]), as_list(grid["head"])
    labels = list(dict.fromkeys(loss_label(normalise_loss(s, f"grid.loss[{i}]"))
                                for i, s in enumerate(as_list(grid["loss"]))))
    keys = list(itertools.product(backbones, heads, labels))
    if not isinstance(raw, dict):
        default = _check_seed_list(raw, "seeds")
        return CellSeeds(default, dict.fromkeys(keys, default))
    sec = check_section(raw, SEEDS, "seeds")
    default = _check_seed_list(sec["default"], "seeds.default")
    cells = dict.fromkeys(keys, default)
    given: dict = {}
    names = {"backbone": backbones, "head": heads, "loss": labels}
    for i, entry in enumerate(sec["cells"]):
        at = f"seeds.cells[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"only", "seeds"}:
            raise SuiteError(f"`{at}` must be a mapping with the keys `only` and `seeds`, e.g. "
                             "{only: {backbone: densenet121, loss: [bce, msml]}, seeds: "
                             f"{default + [max(default) + 1]}}}, got {entry!r}")
        only = entry["only"]
        if not isinstance(only, dict) or not only:
            raise SuiteError(f"`{at}.only` must map some of {list(CELL_AXES)} to a name or a "
                             f"list of names (as --only), got {only!r}")
        want = {}
        for axis, value in only.items():
            if axis not in CELL_AXES:
                extra = (" (a cell's seeds are its `seeds`)" if axis == "seed" else "")
                raise SuiteError(f"unknown key `{at}.only.{axis}`{extra}; valid keys: "
                                 f"{list(CELL_AXES)}")
            want[axis] = [_cell_name(v, axis, f"{at}.only.{axis}") for v in as_list(value)]
            for name in want[axis]:
                if name not in names[axis]:
                    raise SuiteError(f"`{at}.only.{axis}`: {name!r} is not in the grid, so "
                                     f"it matches no cell; {axis} values: {names[axis]}")
        seeds = _check_seed_list(entry["seeds"], f"{at}.seeds")
        if seeds[:len(default)] != default or len(set(seeds)) != len(seeds):
            fix = default + [s for s in dict.fromkeys(seeds) if s not in default]
            raise SuiteError(f"`{at}.seeds` must begin with `seeds.default` {default} and add "
                             f"seeds not listed yet (a cell adds seeds: the first is the "
                             f"selection seed of every cell), got {seeds}; write {fix}")
        # the grid is a product: names that are in it always match some cell
        matched = [k for k in keys if all(dict(zip(CELL_AXES, k, strict=True))[a] in v
                                          for a, v in want.items())]
        for key in matched:
            if key in given and cells[key] != seeds:
                raise SuiteError(f"cell {'/'.join(key)} gets seeds {cells[key]} from "
                                 f"`seeds.cells[{given[key]}]` and {seeds} from `{at}`; give "
                                 "it one list (narrow an `only`)")
            cells[key], given[key] = seeds, i
    return CellSeeds(default, cells)


def _cell_name(value, axis: str, where: str) -> str:
    """A name of ``only``: a string without spaces (as --only), or a loss spec's label."""
    if axis == "loss" and isinstance(value, (dict, list)):
        return loss_label(normalise_loss(value, where))
    if not isinstance(value, str):
        raise SuiteError(f"`{where}` must be a name or a list of names, got {value!r}")
    return re.sub(r"\s+", "", value)


def backbone_weights(weights: Any, backbones: list[str]) -> dict[str, str | None]:
    """``model.weights`` per backbone: one file for every backbone, or a mapping backbone ->
    file (a backbone it leaves out gets None: the hub's weights if pretrained, else none).

    Raises:
        SuiteError: a mapping that names a backbone the grid lacks, or a value not a path.
    """
    if not isinstance(weights, dict):
        return dict.fromkeys(backbones, weights)
    unknown = sorted(set(weights) - set(backbones))
    if unknown:
        raise SuiteError(f"`model.weights` names backbones not in `grid.backbone`: {unknown} "
                         f"(the grid has {backbones})")
    for name, file in weights.items():
        if not isinstance(file, str):
            raise SuiteError(f"`model.weights.{name}` must be a file path, got {file!r}")
    return {b: weights.get(b) for b in backbones}
