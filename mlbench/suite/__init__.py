"""Suites: YAML -> validated, resolved run configs with stable ids.

A suite names a dataset, a grid (backbone x head x loss), seeds and the training and
evaluation settings. One module per job:

- ``schema``: the keys, types and defaults; ``${VAR:-default}`` interpolation; ``--set``.
- ``load``: reading a suite through those layers into one ``Run`` per grid cell x seed;
  ``--only`` filters and the ``--dry-run`` table.
- ``identity``: canonical JSON of a run config -> its run id.
- ``checks``: preflight checks (dataset presence, registry names) before anything runs.

Loading is torch-free (``load_suite(..., train_keys=False)``), so a missing dataset is
reported at once; ``check_names`` imports the registries, the only source of valid names.
"""

from mlbench.suite.checks import check_names, data_problem, sim_root_problem
from mlbench.suite.identity import canonical_json, run_id
from mlbench.suite.load import (
    Run,
    Suite,
    describe_runs,
    expand,
    filter_runs,
    load_suite,
    loss_label,
    normalise_loss,
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

__all__ = [
    "DATASET", "EVAL", "GRID", "GRID_AXES", "MODEL", "SIM", "TOP", "TRAIN_HARNESS",
    "Key", "Run", "Suite", "SuiteError",
    "apply_overrides", "canonical_json", "check_names", "data_problem", "describe_runs",
    "expand", "filter_runs", "interpolate", "load_suite", "loss_label", "normalise_loss",
    "parse_only", "run_id", "sim_root_problem", "train_schema",
]
