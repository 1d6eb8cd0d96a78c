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
from mlbench.suite.schema import OPTIONAL_KEYS, SEED_MAX, SuiteError, as_list, yaml_float


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
    """One ``Run`` per backbone x head x loss x seed, in suite order."""
    grid = cfg["grid"]
    backbones = as_list(grid["backbone"])
    heads = as_list(grid["head"])
    losses_ = [normalise_loss(s, f"grid.loss[{i}]") for i, s in enumerate(as_list(grid["loss"]))]
    seeds = as_list(cfg["seeds"])
    for axis, values in (("grid.backbone", backbones), ("grid.head", heads), ("seeds", seeds)):
        kind = int if axis == "seeds" else str
        for i, v in enumerate(values):
            if not isinstance(v, kind) or isinstance(v, bool):
                raise SuiteError(f"`{axis}[{i}]` must be {kind.__name__}, got {v!r}")
            if kind is int and not 0 <= v <= SEED_MAX:
                raise SuiteError(f"`{axis}[{i}]` must be in [0, {SEED_MAX}] (a 32-bit seed, "
                                 f"what every RNG of a run takes), got {v}")
        if not values:
            raise SuiteError(f"`{axis}` is empty")
    if not losses_:
        raise SuiteError("`grid.loss` is empty")
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
    for backbone, head, loss, seed in itertools.product(backbones, heads, losses_, seeds):
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
