"""Statistics: one run's metrics and the leaderboard's comparisons (SPEC §5.1). Imports numpy,
scipy and scikit-learn, nothing of mlbench outside this package and no torch: the engine, the
one-run worker and the leaderboard take their numbers from the names below (modules at the
end).

The comparisons: seeds × patient-clustered test set. Two sources of uncertainty enter every interval and test:

* **training randomness**, from the spread of a run's mean AUC over seeds;
* **test-set sampling**: the test set is a sample of *patients*. Every image has a DeLong
  influence value per class (:func:`influence`); they are averaged over the classes used and
  over the seeds, summed within each patient, and the patient sums are squared and added
  (the clustered / sandwich form of DeLong's variance: with one image per patient it is
  exactly DeLong's).

For a loss L against the reference R on S seeds paired by index::

    delta   = mean_s [meanAUC(L, s) - meanAUC(R, s)]
    V_seed  = s2 / S          s2: the pair's own seed variance of the paired differences
                              (S-1 df; nothing pooled between losses: :mod:`mlbench.stats.seedvar`)
    V_test  = mean over seed pairs s != s' of sum_patients Psi_s Psi_s' (Psi: patient sums of
              the class-averaged (L - R) influence values), with its own df from the spread
              of the per-patient terms
    se      = sqrt(V_seed + V_test)
    p, CI   = 3+ seeds: Student t on df = the Satterthwaite df of both estimated terms with
              V_seed at its upper confidence bound (``seedvar.t_df``); 2 seeds:
              Behrens-Fisher, delta / se ~ sin(th) T_1 + cos(th) T_{df_test}, tan(th)^2 =
              V_seed / V_test (``seedvar.behrens_fisher``); both ``seedvar.p_value``; df
              reported: the t test's

With fewer than 2 matched seeds there is no seed term, so no CI and no test.

Classes too sparse for these asymptotics are left out of every mean, the same way for every
loss, by :class:`SparseRule` (it depends on the test labels and patients only). A class with a
single label value in the test split is not estimable at all.

Missing labels (a test set's mask, ``mlbench.data.testsets``): the per-run metrics,
``SparseRule.check``, ``run_stats``, ``influence`` and ``paired_comparison`` take ``mask``
(N, C), True where a label is known; each class is then computed on its labelled rows
(influence 0 elsewhere). ``transfer``: does a loss ranking transfer between test sets
(Kendall's tau over seeds x patients).

One module per job: ``metrics`` (per-class AUC/AP, mean AUC, mAP, label ranking, the
patient-clustered bootstrap CI and ``metric_records``, one run's rows for the results store),
``delong`` (classes used, influence values, patient clustering, a run's statistics),
``seedvar`` (the seed term, the test term's df, the df rule), ``compare`` (comparisons, Holm,
the pooled seed variance of the rule before issue 30, kept for calibration), ``simulate``
(simulated leaderboards for ``mlbench calibrate``), ``transfer`` (ranking agreement).
"""

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
    influence_rows,
    run_stats,
)
from mlbench.stats.metrics import (
    WeightedAUC,
    bootstrap_ci,
    evaluate_scores,
    group_index,
    label_ranking,
    mean_auc,
    metric_records,
    per_class_ap,
    per_class_auc,
    skipped_classes,
)
from mlbench.stats.seedvar import (
    behrens_fisher,
    ci_half_width,
    fit_prior,
    moderate,
    p_value,
    t_df,
    test_term,
)
from mlbench.stats.transfer import RankingAgreement, ScoredTestSet, kendall_tau_b, ranking_agreement

__all__ = [
    "RankingAgreement", "ScoredTestSet", "kendall_tau_b", "ranking_agreement",
    "Comparison", "RunStats", "SeedTerm", "SparseRule", "WeightedAUC", "behrens_fisher",
    "bootstrap_ci", "ci_half_width",
    "clustered_terms", "clustered_variance", "compare", "dataset_ids", "evaluate_scores",
    "fit_prior", "group_index", "holm", "influence", "influence_levels", "influence_rows",
    "label_ranking", "mean_auc", "mean_ci", "metric_records", "moderate", "p_value",
    "paired_comparison", "per_class_ap", "per_class_auc", "pooled_seed_variance", "run_stats", "seed_terms",
    "skipped_classes", "t_df", "test_term",
]
