"""Multi-stage recipes: a suite's ``{stages: [...]}`` loss entry as :class:`Stage` objects.

The two-stage recipe of AUC maximisation (Yuan et al. 2021; DeepAUC#1, LibAUC#4): pre-train
with BCE, then fine-tune with AUC-M and PESG from the pre-trained weights, in one run::

    grid:
      loss: [{stages: [{loss: bce, epochs: 2}, {loss: aucm, lr: 0.1, schedule: step}]}]

Each stage but the last names its epochs; the last takes the rest of ``train.epochs``.
A stage's ``lr`` / ``schedule`` override the run's for that stage; a stage after the first
has no warm-up (its schedule starts at its lr). The optimizer is the one the stage's loss
names (PESG for AUC-M), else ``train.optimizer``, built afresh at the stage boundary
(:func:`mlbench.train.fit`). The suite checks the entry (``mlbench.suite.grid``); this module
turns a checked one into stages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import TrainConfig
from .engine import Stage

__all__ = ["is_recipe", "recipe_stages"]


def is_recipe(spec: Any) -> bool:
    """Whether a run's loss spec is a multi-stage recipe (``{"stages": [...]}``)."""
    return isinstance(spec, dict) and "stages" in spec


def recipe_stages(spec: dict, cfg: TrainConfig, stats: dict | None = None) -> list[Stage]:
    """The :class:`Stage` list of a recipe, each with its loss built (``losses.create_loss``
    with ``stats``) and its settings (``cfg`` with the stage's epochs and overrides).

    Raises:
        ValueError: the stages do not fit in ``cfg.epochs``, a bad override, a bad loss spec.
    """
    import losses

    stages = spec["stages"]
    named = sum(s["epochs"] for s in stages[:-1])
    out = []
    for k, stage in enumerate(stages):
        epochs = stage.get("epochs", cfg.epochs - named) if k == len(stages) - 1 else stage["epochs"]
        if epochs < 1:
            raise ValueError(f"the recipe's stages {[s.get('epochs') for s in stages]} leave "
                             f"no epoch for its last stage (train.epochs = {cfg.epochs})")
        lr = float(stage.get("lr", cfg.lr))
        changes: dict[str, Any] = {"epochs": epochs, "lr": lr,
                                   "schedule": stage.get("schedule", cfg.schedule),
                                   "min_lr": min(cfg.min_lr, lr)}
        if k > 0:
            changes.update(warmup_epochs=0.0, warmup_steps=None)
        loss = losses.create_loss(stage["loss"], stats=stats)
        out.append(Stage(loss, dataclasses.replace(cfg, **changes), label=_label(stage["loss"])))
    return out


def _label(spec: Any) -> str:
    """A stage's name in the history rows: its spec string, or the names of its terms."""
    if isinstance(spec, str):
        return spec
    terms = spec if isinstance(spec, list) else [spec]
    return "+".join(str(t.get("name")) for t in terms)
