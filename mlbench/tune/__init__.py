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

from mlbench.suite.tuning import Cell, Plan, Setting, plan_suite
from mlbench.tune.run import filter_plan, run_tuned
from mlbench.tune.select import (
    MASK,
    META_KEY,
    SelectedRuns,
    Selection,
    annotate,
    render_settings,
    selected,
    settings_frame,
    settings_text,
    store_plan,
    store_selection,
    stored_plan,
    val_aucs,
)

__all__ = [
    "MASK", "META_KEY", "Cell", "Plan", "SelectedRuns", "Selection", "Setting", "annotate",
    "filter_plan", "plan_suite", "render_settings", "run_tuned", "selected", "settings_frame",
    "settings_text", "store_plan", "store_selection", "stored_plan", "val_aucs",
]
