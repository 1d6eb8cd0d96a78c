"""Suites: YAML -> validated, resolved run configs with stable ids, and what to try and
what was chosen when a suite is tuned. Imports ``mlbench.layout``; the registries of
``losses``, ``mlbench.models`` and ``mlbench.train`` (``TrainConfig``) only inside the
functions that check names against them; no results store, driver or leaderboard (the
selection reads any object with the store's read methods).

A suite names a dataset, a grid (backbone x head x loss), seeds and the training and
evaluation settings. One module per job:

- ``schema``: the keys, types and defaults; ``${VAR:-default}`` interpolation; ``--set``.
- ``grid``: ``Run``, the grid expansion, loss specs and their labels.
- ``load``: reading a suite through those layers into one ``Run`` per grid cell x seed;
  ``--only`` filters and the ``--dry-run`` table.
- ``identity``: canonical JSON of a run config -> its run id.
- ``contrasts``: the primary contrasts of ``analysis.primary`` ('A vs B'), checked at load.
- ``checks``: preflight checks (dataset presence, registry names) before anything runs.
- ``tuning``: what to try (``tune:`` settings per loss, equal budget, seeded draw, stages).
- ``selection``: what was chosen (each cell's setting, from stored validation AUCs only).

Loading is torch-free (``load_suite(..., train_keys=False)``), so a missing dataset is
reported at once; ``check_names`` imports the registries, the only source of valid names.
"""

from mlbench.suite.checks import check_names, data_problem, sim_root_problem
from mlbench.suite.contrasts import CHANCE, Contrast, expectations, parse_contrast, parse_contrasts
from mlbench.suite.grid import (
    CellSeeds,
    Run,
    cell_seeds,
    expand,
    loss_label,
    normalise_loss,
    training_labels,
)
from mlbench.suite.identity import canonical_json, path_run_id, run_id
from mlbench.suite.load import (
    Suite,
    describe_runs,
    filter_plan,
    filter_runs,
    load_suite,
    parse_only,
)
from mlbench.suite.schema import (
    DATASET,
    EVAL,
    GRID,
    GRID_AXES,
    MODEL,
    SIM,
    TOP,
    TRAIN_HARNESS,
    Key,
    SuiteError,
    apply_overrides,
    interpolate,
    train_schema,
)
from mlbench.suite.selection import (
    META_KEY,
    Selection,
    selected,
    store_plan,
    store_selection,
    stored_plan,
    val_aucs,
)
from mlbench.suite.tuning import Cell, Plan, Setting, plan_suite, unique_runs

__all__ = [
    "CHANCE", "CellSeeds", "Contrast", "cell_seeds", "expectations", "parse_contrast", "parse_contrasts",
    "DATASET", "EVAL", "GRID", "GRID_AXES", "META_KEY", "MODEL", "SIM", "TOP",
    "TRAIN_HARNESS", "Cell", "Key", "Plan", "Run", "Selection", "Setting", "Suite",
    "SuiteError", "apply_overrides", "canonical_json", "check_names", "data_problem",
    "describe_runs", "expand", "filter_plan", "filter_runs", "interpolate", "load_suite",
    "loss_label", "normalise_loss", "parse_only", "path_run_id", "plan_suite", "run_id",
    "selected", "sim_root_problem", "store_plan", "store_selection", "stored_plan",
    "train_schema", "training_labels", "unique_runs", "val_aucs",
]
