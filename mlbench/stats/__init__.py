"""Comparison statistics of the leaderboard (SPEC §5.1): seeds × patient-clustered test set.

Two sources of uncertainty enter every interval and test:

* **training randomness**, from the spread of a run's mean AUC over seeds;
* **test-set sampling**: the test set is a sample of *patients*. Every image has a DeLong
  influence value per class (:func:`influence`); they are averaged over the classes used and
  over the seeds, summed within each patient, and the patient sums are squared and added
  (the clustered / sandwich form of DeLong's variance: with one image per patient it is
  exactly DeLong's).

For a loss L against the reference R on S seeds paired by index::

    delta   = mean_s [meanAUC(L, s) - meanAUC(R, s)]
    V_seed  = s~2 / S         s~2: the seed variance of the paired differences, the pair's own
                              (S-1 df) moderated with the setup's other comparisons only as far
                              as their spreads agree, and not at all with 2 seeds
                              (:mod:`mlbench.stats.seedvar`)
    V_test  = mean over seed pairs s != s' of sum_patients Psi_s Psi_s' (Psi: patient sums of
              the class-averaged (L - R) influence values), with its own df from the spread
              of the per-patient terms
    se      = sqrt(V_seed + V_test),  df: Satterthwaite of both terms (``seedvar.t_df``)
    CI      = delta ± t_{df, 1-alpha/2} se,  p = 2 P(T_df > |delta| / se)

With fewer than 2 matched seeds there is no seed term, so no CI and no test.

Classes too sparse for these asymptotics are left out of every mean, the same way for every
loss, by :class:`SparseRule` (it depends on the test labels and patients only). A class with a
single label value in the test split is not estimable at all.

``bootstrap_ci`` is the per-run patient-clustered bootstrap (resample patients, seeded),
vectorised over replicates (it lives with the per-run metrics, :mod:`mlbench.metrics`, and
is re-exported here). ``holm`` is Holm's step-down adjustment.

One module per job: ``delong`` (classes used, influence values, patient clustering, a run's
statistics), ``seedvar`` (the seed term, the test term's df, the df rule), ``compare``
(comparisons, Holm), ``simulate`` (simulated leaderboards for ``mlbench calibrate``).
"""

from mlbench.metrics import WeightedAUC, bootstrap_ci, group_index
from mlbench.stats.compare import (
    Comparison,
    SeedTerm,
    compare,
    holm,
    mean_ci,
    paired_comparison,
    pooled_seed_variance,
    seed_terms,
)
from mlbench.stats.delong import (
    RunStats,
    SparseRule,
    clustered_terms,
    clustered_variance,
    dataset_ids,
    influence,
    influence_levels,
    influence_rows,  # noqa: F401
    run_stats,
)
from mlbench.stats.seedvar import fit_prior, moderate, t_df, test_term

__all__ = [
    "Comparison",
    "RunStats",
    "SeedTerm",
    "SparseRule",
    "WeightedAUC",
    "bootstrap_ci",
    "clustered_variance",
    "compare",
    "dataset_ids",
    "fit_prior",
    "group_index",
    "holm",
    "influence",
    "influence_levels",
    "mean_ci",
    "moderate",
    "paired_comparison",
    "pooled_seed_variance",
    "run_stats",
    "seed_terms",
    "t_df",
    "test_term",
    "clustered_terms",
]
