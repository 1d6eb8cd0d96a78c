"""Masked metrics against the unmasked computation on each class's labelled rows, at a
realistic size (the tests check the same on small data):

    python -m tools.masked_agreement --patients 1000 --per 5 --classes 14 --masked 0.3

Prints the largest absolute difference of each masked path (per-class AUC and AP vs
scikit-learn, DeLong influence values, the patient bootstrap's CI bounds, LRAP and ranking
loss vs per-image scikit-learn, the clustered DeLong comparison) from its reference.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    label_ranking_average_precision_score,
    label_ranking_loss,
    roc_auc_score,
)

from mlbench import stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--per", type=int, default=5, help="images per patient")
    ap.add_argument("--classes", type=int, default=14)
    ap.add_argument("--masked", type=float, default=0.3, help="fraction of labels masked")
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    g = np.repeat(np.arange(a.patients), a.per)
    n, c = len(g), a.classes
    t = (rng.random((n, c)) < 0.1).astype(float)
    s = np.round(t + rng.normal(0, 1, (n, c)) + rng.normal(0, 0.5, (a.patients, 1))[g], 2)
    known = rng.random((n, c)) >= a.masked
    known[:: a.per] = True  # every patient keeps a label: the bootstraps draw alike
    t[~known] = np.nan
    rows = [known[:, k] for k in range(c)]
    out = stats.evaluate_scores(t, s, mask=known)
    print(f"{n} images of {a.patients} patients, {c} classes, {100 * (~known).mean():.0f}% "
          "of labels masked; largest |masked - reference|:")
    print(f"  per-class AUC vs sklearn on the labelled rows  {max(abs(out['auc'][k] - roc_auc_score(t[r, k], s[r, k])) for k, r in enumerate(rows)):.1e}")
    print(f"  per-class AP vs sklearn on the labelled rows   {max(abs(out['ap'][k] - average_precision_score(t[r, k], s[r, k])) for k, r in enumerate(rows)):.1e}")
    auc, phi = stats.influence(np.nan_to_num(t).astype(bool), s, known)
    d_auc = d_phi = 0.0
    for k, r in enumerate(rows):
        a1, p1 = stats.influence(t[r, k:k + 1].astype(bool), s[r, k:k + 1])
        d_auc = max(d_auc, abs(auc[k] - a1[0]))
        d_phi = max(d_phi, float(np.abs(phi[r, k] - p1[:, 0]).max()), float(np.abs(phi[~r, k]).max(initial=0)))
    print(f"  DeLong AUC / influence values vs the subset's  {d_auc:.1e} / {d_phi:.1e}")
    b = stats.bootstrap_ci(t, s, groups=g, mask=known, n_boot=a.boot, seed=3)
    d_ci = 0.0
    for k, r in enumerate(rows):
        sub = stats.bootstrap_ci(t[r, k], s[r, k], groups=g[r], n_boot=a.boot, seed=3)
        d_ci = max(d_ci, abs(b["auc_lo"][k] - sub["auc_lo"][0]), abs(b["auc_hi"][k] - sub["auc_hi"][0]))
    print(f"  patient bootstrap CI bounds vs the subset's    {d_ci:.1e}")
    lr = stats.label_ranking(t, s, mask=known)
    ref_p, ref_l = [], []
    for i in range(n):
        ti, si = t[i, known[i]].astype(int)[None], s[i, known[i]][None]
        if 0 < ti.sum() < ti.size:
            ref_p.append(label_ranking_average_precision_score(ti, si))
            ref_l.append(label_ranking_loss(ti, si))
    print(f"  LRAP / ranking loss vs per-image sklearn       {abs(lr['lrap'] - np.mean(ref_p)):.1e} / "
          f"{abs(lr['ranking_loss'] - np.mean(ref_l)):.1e} ({lr['n_ranked']} images ranked)")
    other = s + rng.normal(0, 0.3, s.shape)
    rule = stats.SparseRule(1, 1)
    res = stats.paired_comparison(t[:, :1], g, s[:, :1], other[:, :1], rule=rule, mask=known[:, :1])
    r = rows[0]
    sub = stats.paired_comparison(t[r, :1], g[r], s[r, :1], other[r, :1], rule=rule)
    print(f"  clustered DeLong delta / var_test (relative)   {abs(res.delta - sub.delta):.1e} / "
          f"{abs(res.var_test / sub.var_test - 1):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
