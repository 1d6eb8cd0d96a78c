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
from mlbench.suite.schema import SEED_MAX, SuiteError, as_list


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
    if isinstance(spec, dict):
        if "name" not in spec:
            raise SuiteError(f"`{where}`: a loss mapping needs `name`, got keys {sorted(spec)}")
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
    """Short display label of a loss spec (leaderboard row name)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return "+".join(_term_label(t) for t in spec)
    return _term_label(spec)


def _term_label(term: dict) -> str:
    weight = term.get("weight")
    kwargs = {k: v for k, v in term.items() if k not in ("name", "weight")}
    text = term["name"]
    if kwargs:
        text += "(" + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")"
    return f"{weight}*{text}" if weight not in (None, 1, 1.0) else text




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
    shared = {
        "dataset": cfg["dataset"],
        "model": cfg["model"],
        "train": cfg["train"],
        "eval": {"bootstrap": cfg["eval"]["bootstrap"]},
    }
    runs, seen = [], set()
    for backbone, head, loss, seed in itertools.product(backbones, heads, losses_, seeds):
        config = {"suite": cfg["name"], "backbone": backbone, "head": head, "loss": loss,
                  "seed": seed, **copy.deepcopy(shared)}
        rid = run_id(config)
        if rid in seen:  # the same cell listed twice runs once
            continue
        seen.add(rid)
        runs.append(Run(rid, config))
    return runs


