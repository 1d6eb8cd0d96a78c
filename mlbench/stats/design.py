"""Design of a study before its GPU-hours (issue 25): the SE of a comparison, the minimal
detectable effect at 80% power after the family's Holm correction, and the seeds a target
effect needs -- on a test split's real structure, with no training.

The variance of Δ̄ (a loss vs the reference, S seeds) in the score model of
:mod:`mlbench.stats.simulate`, with ``seed_sd`` the SD over seeds of a run's mean AUC::

    Var(Δ_s)  = 2 (1 - ρ) (seed_sd² - floor) + 2 floor     (seed effects + each run's own
                                                             test-set noise, which varies
                                                             with the seed)
    V_test    = 2 Σ_g vu_g                                  (the loss x patient effect all
                                                             seeds of a loss share)
    SE(Δ̄)    = √(Var(Δ_s) / S + V_test)

V_test does not shrink with seeds: it is the floor of the SE on this test split (the loss x
patient effect's SD is the score model's ``loss_patient_sd``, an assumption: no results
folder can measure it from one test split).

Power has no closed form under the leaderboard's rule (the own seed term with few df and the
test term: :func:`mlbench.stats.seedvar.p_value`), so it is
simulated: ``replicates`` null setups of L losses x S seeds are drawn once with the patient
engine (:func:`mlbench.stats.simulate.draw_patient`), each comparison's SE and df computed by
the leaderboard's rule (``simulate.RULES["leaderboard"]``, ``seedvar.p_value``), and an effect
δ of the last loss is added to its estimate (to first order the SE and df do not move with δ).
Power(δ) = P(the last comparison is rejected by Holm over the family's m comparisons, with
Δ̄ > 0); the family's other comparisons of the block are the simulated nulls, the rest of
the family (other setups) null p-values that almost never come first and are counted as 1
(conservative by at most their chance of being rejected first). The MDE is the δ with 80%
power, by bisection on the same draws; the seeds needed for a target effect, by bisection on
S. :func:`check_power` is the independent check: the effect drawn in the score model
(not added), other seeds, power counted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

POWER = 0.8


@dataclass
class Draws:
    """Null setups of one design under the leaderboard's rule: (R, L-1) each."""

    est: np.ndarray  # Δ̄ of each comparison
    se: np.ndarray
    df: np.ndarray  # the t test's df of both terms (seedvar.t_df; p: seedvar.p_value)
    losses: int
    seeds: int
    terms: tuple = ()  # (vs, ds, vt, dt) of each comparison, for seedvar.p_value
    null_p: dict = field(default_factory=dict, repr=False)  # k -> p of the k-1 nulls (cache)


def true_se(pm, seed_sd: float, seeds: int, rho: float = 0.0) -> float:
    """SE of Δ̄ in the score model (module doc) for a :class:`simulate.PatientModel`."""
    floor = pm.floor()
    var_s = 2 * (1 - rho) * max(seed_sd**2 - floor, 0.0) + 2 * floor
    return float(np.sqrt(var_s / seeds + 2 * pm.vu.sum()))


def draw(split, model, losses: int, seeds: int, seed_sd: float, replicates: int, rng,
         rho: float = 0.0, pm=None, chunk_elements: int = 30_000_000) -> Draws:
    """``replicates`` null setups of ``losses`` x ``seeds`` -> their comparisons' Δ̄, SE, df
    under the leaderboard's rule."""
    from mlbench.stats import seedvar
    from mlbench.stats import simulate as sim

    design = sim.Design(losses, seeds, seed_sd, (), rho)
    per = losses * seeds * split.n_groups
    chunk = max(1, chunk_elements // per)
    out = {"est": [], "se": [], "df": [], "vs": [], "ds": [], "vt": [], "dt": []}
    done = 0
    while done < replicates:
        r = min(chunk, replicates - done)
        auc, psum = sim.draw_patient(split, model, design, r, rng, pm)
        delta = auc[:, 1:] - auc[:, :1]
        (vd, dd), _, _ = sim.RULES["leaderboard"][0](auc, delta)
        vt, dt = seedvar.test_term(psum[:, 1:] - psum[:, :1])
        vs = vd / seeds
        out["est"].append(delta.mean(-1))
        out["se"].append(np.sqrt(vs + vt))
        out["df"].append(seedvar.t_df(vs, dd, vt, dt))
        for k, x in zip(("vs", "ds", "vt", "dt"), (vs, dd, vt, dt), strict=True):
            out[k].append(np.broadcast_to(x, vs.shape))
        done += r
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return Draws(cat["est"], cat["se"], cat["df"], losses, seeds,
                 tuple(cat[k] for k in ("vs", "ds", "vt", "dt")))


def holm_rejects_last(p: np.ndarray, m: int, alpha: float = 0.05) -> np.ndarray:
    """(R, k) p-values whose last column is the effect's, in a Holm family of m >= k
    hypotheses (the other m - k counted as p = 1) -> (R,) whether Holm rejects the last."""
    r, k = p.shape
    order = np.argsort(p, axis=1, kind="stable")
    sp = np.take_along_axis(p, order, axis=1)
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(k))[None, :] * sp, axis=1))
    rank = np.argmax(order == k - 1, axis=1)
    return adj[np.arange(r), rank] < alpha


def _family_p(draws: Draws, effect: float, m: int) -> tuple[np.ndarray, np.ndarray]:
    """p-values of the family's comparisons inside the block, the effect's last."""
    from mlbench.stats import seedvar

    k = min(m, draws.losses - 1)
    est = draws.est[:, -k:].copy()
    est[:, -1] += effect
    vs, ds, vt, dt = (x[:, -k:] for x in draws.terms)
    if k not in draws.null_p:  # the other comparisons' p do not move with the effect
        draws.null_p[k] = seedvar.p_value(est[:, :-1], vs[:, :-1], ds[:, :-1], vt[:, :-1],
                                          dt[:, :-1])
    last = seedvar.p_value(est[:, -1], vs[:, -1], ds[:, -1], vt[:, -1], dt[:, -1])
    return np.concatenate([draws.null_p[k], last[:, None]], axis=1), est[:, -1]


def power(draws: Draws, effect: float, m: int, alpha: float = 0.05) -> float:
    """P(Holm over m rejects the last comparison, Δ̄ > 0) with a true effect ``effect``."""
    p, est = _family_p(draws, effect, m)
    return float((holm_rejects_last(p, max(m, p.shape[1]), alpha) & (est > 0)).mean())


def mde(draws: Draws, m: int, alpha: float = 0.05, target: float = POWER,
        hi: float = 0.3) -> float:
    """Smallest effect with ``target`` power (bisection on the same draws); NaN if even
    ``hi`` does not reach it."""
    if power(draws, hi, m, alpha) < target:
        return float("nan")
    lo = 0.0
    while hi - lo > 1e-6:
        mid = 0.5 * (lo + hi)
        if power(draws, mid, m, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def seeds_needed(split, model, losses: int, seed_sd: float, effect: float, m: int,
                 replicates: int, seed: int = 0, rho: float = 0.0, alpha: float = 0.05,
                 max_seeds: int = 64, pm=None) -> tuple[int | None, float]:
    """Fewest seeds (2..max_seeds) with ``POWER`` power at ``effect``: (S, its power), or
    (None, power at the largest S tried). Each S has its own seeded draws; S doubles from 2
    until the power is reached, then bisection. An effect below what even infinitely many
    seeds find (the test term's floor, normal approximation: (z_{1-alpha/2m} + z_0.8) x
    √V_test) is (None, 0.0) at once."""
    from scipy import stats as _st

    if pm is not None:
        floor = float(np.sqrt(2 * pm.vu.sum()))
        if effect < (_st.norm.ppf(1 - alpha / (2 * m)) + _st.norm.ppf(POWER)) * floor:
            return None, 0.0
    cache: dict = {}

    def pw(s: int) -> float:
        if s not in cache:
            rng = np.random.default_rng([seed, 7, s])
            cache[s] = power(draw(split, model, losses, s, seed_sd, replicates, rng, rho, pm),
                             effect, m, alpha)
        return cache[s]

    lo, hi = 1, 2  # pw(lo) < POWER (1 seed: no test)
    while pw(hi) < POWER:
        if hi >= max_seeds:
            return None, pw(hi)
        lo, hi = hi, min(2 * hi, max_seeds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pw(mid) >= POWER:
            hi = mid
        else:
            lo = mid
    return hi, pw(hi)


def check_power(split, model, losses: int, seeds: int, seed_sd: float, effect: float, m: int,
                replicates: int, seed: int = 1, rho: float = 0.0, alpha: float = 0.05) -> float:
    """Power at ``effect`` with the effect drawn in the score model (the last loss better
    by ``effect`` in population mean AUC, :func:`simulate.draw_patient`), Holm over m."""
    from mlbench.stats import simulate as sim

    eff = [0.0] * losses
    eff[-1] = effect
    design = sim.Design(losses, seeds, seed_sd, (), rho, tuple(eff))
    rng = np.random.default_rng([seed, 11])
    k = split.targets.shape[1]
    truth = np.array([a.mean() for a in sim.class_aucs(design, model, k)])
    aucs = sim.class_aucs(design, model, k)
    pm = sim.patient_model(split, model, {tuple(np.round(aucs[-1], 12)): aucs[-1]})
    per = losses * seeds * split.n_groups
    chunk = max(1, 30_000_000 // per)
    hits, done = [], 0
    while done < replicates:
        r = min(chunk, replicates - done)
        auc, psum = sim.draw_patient(split, model, design, r, rng, pm)
        p = sim.evaluate(auc, psum, truth, ["leaderboard"], alpha)["leaderboard"]["p"]
        kk = min(m, losses - 1)
        est = (auc[:, -1] - auc[:, 0]).mean(-1)
        hits.append(holm_rejects_last(p[:, -kk:], max(m, kk), alpha) & (est > 0))
        done += r
    return float(np.concatenate(hits).mean())
