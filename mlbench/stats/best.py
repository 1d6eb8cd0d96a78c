"""Which loss is best, with its uncertainty (issue 25 item 3): per setup, P(each loss has the
highest mean AUC) and its expected rank, from the two variance components of the
leaderboard's per-loss CI (:func:`mlbench.stats.mean_ci`).

Loss l's mean AUC over its S_l seeds, Â_l, is drawn as

    A*_l = Â_l + √(v_l* / S_l) z_l + t_l,     v_l* = v_l d_l / χ²_{d_l}

v_l the loss's own seed variance of a run's mean AUC (as the leaderboard's, on d_l df;
the χ² draw carries its uncertainty with few seeds), z_l independent N(0, 1), and t ~ N(0, C) the test-set errors the losses share: C_lk = Σ_g
Ψ̄_l(g) Ψ̄_k(g) for l != k (Ψ̄ a loss's patient sums of class-averaged influence values, mean
over its seeds), C_ll the cross-seed test term of the CI; C is projected to the nearest
positive semi-definite matrix. P(best)_l = share of draws in which A*_l is the largest,
expected rank = mean rank (1 = best). Seed effects shared by the losses of one seed are not
modelled (ρ = 0): with correlated seeds the differences are less uncertain than this says, so
P(best) errs towards the middle. Checked by simulation (``calibration``, the own v_l as the
leaderboard; ``calibration(split, simulate.ScoreModel(), L, S, seed_sd, tau, 1000, seed=0)``,
split the structure's classes kept by ``SparseRule``). Expected calibration error, tau 0.005 / 0.01:
official split, seed SD 0.004: 4 x 3 3.2 / 3.5%, 8 x 3 2.3 / 2.4%, 4 x 5 1.7 / 1.8% with
the χ² draw (cautious: 0.65 came true 0.70-0.81), plug-in v_l (``variance_draw=False``)
2.3 / 1.5, 1.2 / 0.6, 1.1 / 1.1%; CXR14-sim quickstart split, seed SD 0.0097: χ² draw
3.6 / 1.5, 1.4 / 2.0, 4.6 / 1.0%, plug-in 7.7 / 2.6, 4.2 / 1.7, 6.1 / 2.2% (over-confident
at tau 0.005, where the true differences are smaller than the SE). The χ² draw is kept:
cautious on one split rather than over-confident on the other.
"""

from __future__ import annotations

import numpy as np

DRAWS = 20_000


def patient_sums(psi: np.ndarray, group_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """(..., N) influence values -> (..., G) their sums per patient."""
    psi = np.asarray(psi, dtype=np.float64)
    flat = psi.reshape(-1, psi.shape[-1])
    out = np.stack([np.bincount(group_idx, row, n_groups) for row in flat])
    return out.reshape(psi.shape[:-1] + (n_groups,))


def test_cov(psum: list[np.ndarray]) -> np.ndarray:
    """(L, L) shared test-set covariance of the losses' seed means from each loss's
    (S_l, G) patient sums (module doc)."""
    from mlbench.stats.seedvar import test_term

    n = len(psum)
    bar = np.stack([p.mean(axis=0) for p in psum])  # (L, G)
    c = bar @ bar.T
    for k, p in enumerate(psum):
        c[k, k] = float(test_term(p)[0])
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.maximum(w, 0.0)) @ v.T if n else c


def p_best(means, seed_var, seed_df, seeds, cov, draws: int = DRAWS, rng=None,
           variance_draw: bool = True):
    """P(best) and expected rank of L losses.

    Args:
        means: (..., L) mean AUC over seeds; seed_var / seed_df: (..., L) seed variance of a
            run's mean AUC and its df; seeds: (..., L) seeds per loss; cov: (..., L, L) shared
            test-set covariance. Leading axes: independent setups (simulation).
        variance_draw: draw each seed variance as v d / χ²_d (default; False: v as it is).

    Returns:
        (p_best, expected_rank), each (..., L).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    means = np.asarray(means, dtype=np.float64)
    shape = means.shape
    lead, n_l = shape[:-1], shape[-1]
    var = np.broadcast_to(np.asarray(seed_var, dtype=np.float64), shape)
    df = np.broadcast_to(np.asarray(seed_df, dtype=np.float64), shape)
    s = np.broadcast_to(np.asarray(seeds, dtype=np.float64), shape)
    cov = np.broadcast_to(np.asarray(cov, dtype=np.float64), lead + (n_l, n_l))
    w, v = np.linalg.eigh(cov)
    root = v * np.sqrt(np.maximum(w, 0.0))[..., None, :]  # (..., L, L)
    vstar = np.where(np.isfinite(var) & (var > 0), var, 0.0)[None]
    if variance_draw:
        vstar = vstar * df[None] / rng.chisquare(np.maximum(df, 1e-9)[None], (draws,) + shape)
    z = rng.standard_normal((draws,) + shape)
    t = np.einsum("...kj,d...j->d...k", root, rng.standard_normal((draws,) + shape))
    a = means[None] + np.sqrt(vstar / s[None]) * z + t
    best = a.argmax(axis=-1)
    pb = np.stack([(best == k).mean(axis=0) for k in range(n_l)], axis=-1)
    rank = (a[..., :, None] < a[..., None, :]).sum(axis=-1) + 1  # (draws, ..., L)
    return pb, rank.mean(axis=0)


def calibration(split, model, losses: int, seeds: int, seed_sd: float, tau: float,
                replicates: int, seed: int = 0, draws: int = 4000, bins: int = 10,
                variance_draw: bool = True) -> dict:
    """Simulated check of P(best): per replicate every loss's true mean AUC is shifted by
    N(0, tau²) (first order: added to its runs' mean AUC), the setup drawn with the patient
    engine, P(best) computed as the leaderboard does; predicted P(best) against the share of
    the truly best, by bin.

    Returns:
        dict: ``bins`` rows (lo, hi, n, mean predicted, observed), ``ece`` (expected
        calibration error, weighted by n), ``brier``, ``hit`` (share of replicates whose
        highest-P(best) loss is the truly best) and ``mean_p_true`` (mean P(best) of the truly
        best loss).
    """
    from mlbench.stats import simulate as sim
    rng = np.random.default_rng([seed, 5])
    design = sim.Design(losses, seeds, seed_sd)
    pm = sim.patient_model(split, model)
    auc, psum = sim.draw_patient(split, model, design, replicates, rng, pm)
    shift = tau * rng.standard_normal((replicates, losses))
    auc = auc + shift[..., None]
    own = auc.var(axis=-1, ddof=1)
    bar = psum.mean(axis=2)  # (R, L, G)
    cov = np.einsum("rlg,rkg->rlk", bar, bar)
    tot = psum.sum(axis=2)
    sq = (psum**2).sum(axis=2)
    diag = np.maximum(((tot**2 - sq) / (seeds * (seeds - 1))).sum(-1), 0.0)
    idx = np.arange(losses)
    cov[:, idx, idx] = diag
    w, v = np.linalg.eigh(cov)
    cov = np.einsum("rij,rj,rkj->rik", v, np.maximum(w, 0.0), v)
    # the leaderboard's seed term: each loss's own variance on seeds - 1 df
    pb, _ = p_best(auc.mean(-1), own, np.full(own.shape, seeds - 1.0),
                   np.full(own.shape, float(seeds)), cov,
                   draws, rng, variance_draw)
    truth = np.zeros_like(pb)
    truth[np.arange(replicates), shift.argmax(axis=1)] = 1.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(pb.ravel(), edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if n:
            pred, obs = float(pb.ravel()[sel].mean()), float(truth.ravel()[sel].mean())
            ece += n * abs(pred - obs)
            rows.append((edges[b], edges[b + 1], n, pred, obs))
    return {"bins": rows, "ece": ece / pb.size, "brier": float(((pb - truth) ** 2).mean()),
            "hit": float((pb.argmax(1) == shift.argmax(1)).mean()),
            "mean_p_true": float(pb[np.arange(replicates), shift.argmax(1)].mean())}
