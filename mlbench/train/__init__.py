"""Training: one model trained and evaluated, knowing models, losses and loaders only.

``engine`` (``train_one_epoch``, ``evaluate``, ``fit``: the loops, MAE style), ``config``
(:class:`TrainConfig`, a suite's ``train`` section, with the optimizer and the learning-rate
schedule that follow from it alone), ``checkpoint`` (``best.pt`` weights and the ``last.pt``
training state, written atomically) and ``seeding`` (a run's seeds and determinism, seeded
loaders). Imports torch, the per-run metrics of ``mlbench.stats`` and nothing else of
mlbench: no suite, no results store, no driver.
"""

from mlbench.train.checkpoint import (
    STATE_FORMAT,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from mlbench.train.config import (
    AMP_DTYPES,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    build_optimizer,
    lr_at,
)
from mlbench.train.engine import FitResult, Stage, evaluate, fit, train_one_epoch
from mlbench.train.recipe import is_recipe, recipe_stages
from mlbench.train.sampler import SAMPLERS, ClassAwareSampler
from mlbench.train.seeding import (
    EpochLoader,
    deterministic,
    epoch_seed,
    get_rng_state,
    loader_kwargs,
    make_generator,
    reseed_loader,
    seed_everything,
    set_rng_state,
    worker_init_fn,
)

__all__ = [
    "AMP_DTYPES", "OPTIMIZERS", "SAMPLERS", "SCHEDULES", "STATE_FORMAT", "ClassAwareSampler",
    "EpochLoader", "FitResult",
    "Stage", "TrainConfig",
    "build_optimizer", "deterministic", "epoch_seed", "evaluate", "fit", "get_rng_state",
    "is_recipe", "recipe_stages",
    "load_checkpoint", "load_training_state", "loader_kwargs", "lr_at", "make_generator",
    "reseed_loader", "save_checkpoint", "save_training_state", "seed_everything",
    "set_rng_state", "train_one_epoch", "worker_init_fn",
]
