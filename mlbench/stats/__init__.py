"""Statistics: one run's metrics and the leaderboard's comparisons (SPEC §5.1). ``metrics``
(per-class AUC/AP, mean AUC, mAP, label ranking, the patient-clustered bootstrap CI and
``metric_records``, one run's rows for the results store), ``delong`` (classes used,
influence values, patient clustering, a run's statistics), ``compare`` (comparisons, the df
rule, pooled seed variance, Holm). Imports numpy, scipy and scikit-learn, nothing of mlbench
outside this package and no torch: the engine, the one-run worker and the leaderboard take
their numbers from the names below.

The comparisons: seeds × patient-clustered test set. Two sources of uncertainty enter every interval and test:

* **training randomness**, from the spread of a run's mean AUC over seeds;
* **test-set sampling**: the test set is a sample of *patients*. Every image has a DeLong
  influence value per class (:func:`influence`); they are averaged over the classes used and
  over the seeds, summed within each patient, and the patient sums are squared and added
  (the clustered / sandwich form of DeLong's variance: with one image per patient it is
  exactly DeLong's).

For a loss L against the reference R on S seeds paired by index::

    delta   = mean_s [meanAUC(L, s) - meanAUC(R, s)]
    V_seed  = s2 / S          s2: seed variance of the differences (own: ddof 1, S-1 df;
                              pooled: two-way residual over the losses of a setup, (L-1)(S-1) df)
    V_test  = sum_patients (sum_images_of_patient psi)^2,
              psi = seed-averaged (L - R) influence, averaged over the classes used
    se      = sqrt(V_seed + V_test),  df = (V_seed + V_test)^2 / (V_seed^2 / df_seed)
              (Welch-Satterthwaite; df_seed itself when df_seed < 4, see ``t_df``)
    CI      = delta ± t_{df, 1-alpha/2} se,  p = 2 P(T_df > |delta| / se)

With one seed there is no seed term and the test uses the normal distribution (df = inf).

Classes too sparse for these asymptotics are left out of every mean, the same way for every
loss, by :class:`SparseRule` (it depends on the test labels and patients only). A class with a
single label value in the test split is not estimable at all.

Missing labels (a test set's mask, ``mlbench.data.testsets``): the per-run metrics,
``SparseRule.check``, ``run_stats``, ``influence`` and ``paired_comparison`` take ``mask``
(N, C), True where a label is known; each class is then computed on its labelled rows
(influence 0 elsewhere). ``transfer``: does a loss ranking transfer between test sets
(Kendall's tau over seeds x patients).
"""

from mlbench.stats.compare import (
    MIN_WS_DF,
    Comparison,
    compare,
    holm,
    mean_ci,
    paired_comparison,
    pooled_seed_variance,
    t_df,
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
from mlbench.stats.transfer import RankingAgreement, ScoredTestSet, kendall_tau_b, ranking_agreement

__all__ = [
    "RankingAgreement", "ScoredTestSet", "kendall_tau_b", "ranking_agreement",
    "MIN_WS_DF", "Comparison", "RunStats", "SparseRule", "WeightedAUC", "bootstrap_ci",
    "clustered_terms", "clustered_variance", "compare", "dataset_ids", "evaluate_scores",
    "group_index", "holm", "influence", "influence_levels", "influence_rows", "label_ranking",
    "mean_auc", "mean_ci", "metric_records", "paired_comparison", "per_class_ap",
    "per_class_auc", "pooled_seed_variance", "run_stats", "skipped_classes", "t_df",
]
