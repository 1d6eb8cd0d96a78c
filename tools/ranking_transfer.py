"""Is ``mlbench.stats.ranking_agreement`` (Kendall's tau of a loss ranking between two test
sets, with a seeds x patients interval) calibrated? Simulate and count.

    python -m tools.ranking_transfer --sims 200 --boot 200

Each simulated setup has L losses x S seeds scored on two test sets of clustered patients
(binormal scores: a loss effect, a per-run seed effect per class, a patient effect and an
image effect shared by every run, and run noise). A loss's true mean AUC on a test set grows
with its effect there, so the true ordering on each test set is that of the effects and the
true tau is Kendall's tau between the two effect vectors. Scenarios:

* ``null``: every loss equal on both test sets (no ordering: no verdict should be given);
* ``same``: the same ordering on both (true tau +1);
* ``reversed``: opposite orderings (true tau -1);
* ``swap``: the top two swapped (true tau 1 - 4 / (L (L - 1)));
* ``unrelated``: an ordering on B with true tau 0 against A's (L = 4: 2, 0, 3, 1);
* ``shared-null`` / ``shared-same``: B is a subset of A's images, of the same patients, with
  the same scores and relabelled (15% of labels flipped): ``nih`` vs ``nih-expert``.

Reported per scenario: the mean tau, how often the interval covers the true tau, and how often
the verdict is "transfers" / "reverses".
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mlbench.stats import ScoredTestSet, kendall_tau_b, ranking_agreement

SCENARIOS = ("null", "same", "reversed", "swap", "unrelated", "shared-null", "shared-same")


def _effects(scenario: str, n_losses: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    base = effect * np.arange(n_losses, dtype=np.float64)
    if scenario.endswith("null"):
        return np.zeros(n_losses), np.zeros(n_losses)
    if scenario.endswith("same"):
        return base, base
    if scenario == "reversed":
        return base, base[::-1].copy()
    if scenario == "swap":
        b = base.copy()
        b[-2:] = b[-2:][::-1]
        return base, b
    if scenario == "unrelated":
        if n_losses != 4:
            raise ValueError("scenario `unrelated` is defined for 4 losses")
        return base, base[[2, 0, 3, 1]]
    raise ValueError(f"Expected a scenario in {SCENARIOS} but got {scenario!r}")


def _test_set(rng, n_pat, per, classes, prevalence):
    g = np.repeat(np.arange(n_pat), per)
    y = rng.random((len(g), classes)) < prevalence
    y[0], y[1] = True, False  # both labels in every class
    shared = rng.normal(0, 0.6, (n_pat, 1))[g] + rng.normal(0, 0.5, y.shape)  # patient + image
    return g, y, shared


def _scores(rng, y, shared, effects, n_seeds, d0, seed_sd):
    n_losses = len(effects)
    sc = np.empty((n_losses, n_seeds) + y.shape)
    for i in range(n_losses):
        for s in range(n_seeds):
            shift = d0 + effects[i] + rng.normal(0, seed_sd, (1, y.shape[1]))
            sc[i, s] = y * shift + shared + rng.normal(0, 0.8, y.shape)
    return sc


def simulate(scenario: str, rng: np.random.Generator, *, losses: int = 4, seeds: int = 3,
             patients: int = 200, per: int = 3, classes: int = 3, prevalence: float = 0.2,
             effect: float = 0.12, seed_sd: float = 0.05, d0: float = 1.0):
    """One simulated setup: (ScoredTestSet A, ScoredTestSet B, true tau or NaN)."""
    ea, eb = _effects(scenario, losses, effect)
    ga, ya, sha = _test_set(rng, patients, per, classes, prevalence)
    sa = _scores(rng, ya, sha, ea, seeds, d0, seed_sd)
    if scenario.startswith("shared"):
        rows = np.flatnonzero(rng.random(len(ga)) < 0.5)
        yb = ya[rows] ^ (rng.random((len(rows), classes)) < 0.15)
        yb[0], yb[1] = True, False
        a = ScoredTestSet(sa, ya, ga)
        b = ScoredTestSet(sa[:, :, rows], yb, ga[rows])
    else:
        gb, yb, shb = _test_set(rng, patients, per, classes, prevalence)
        a = ScoredTestSet(sa, ya, ga)
        b = ScoredTestSet(_scores(rng, yb, shb, eb, seeds, d0, seed_sd), yb, gb + patients)
    true = float(kendall_tau_b(ea[None], eb[None])[0])
    return a, b, true


def study(scenario: str, sims: int, boot: int, seed: int = 0, method: str = "auto",
          **kw) -> dict:
    """Run ``sims`` simulations of a scenario; the rates of each verdict and the coverage."""
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario)])
    taus, covered, verdicts = [], [], []
    for k in range(sims):
        a, b, true = simulate(scenario, rng, **kw)
        res = ranking_agreement(a, b, n_boot=boot, seed=k, method=method)
        taus.append(res.tau)
        verdicts.append(res.verdict)
        if np.isfinite(true):
            covered.append(res.ci_lo <= true <= res.ci_hi)
    v = np.array(verdicts)
    return {"scenario": scenario, "sims": sims, "mean_tau": float(np.nanmean(taus)),
            "true_tau": true, "coverage": float(np.mean(covered)) if covered else float("nan"),
            "transfers": float((v == "transfers").mean()),
            "reverses": float((v == "reverses").mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=200, help="simulated setups per scenario")
    ap.add_argument("--boot", type=int, default=200, help="bootstrap replicates per setup")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--losses", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--patients", type=int, default=200, help="patients per test set")
    ap.add_argument("--effect", type=float, default=0.12,
                    help="score shift between adjacent losses (binormal units)")
    ap.add_argument("--seed-sd", type=float, default=0.05, help="seed-to-seed SD of the shift")
    ap.add_argument("--method", default="auto", choices=("auto", "exact", "linear"),
                    help="replicate mean AUCs (ranking_agreement's method; auto: exact here)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    kw = dict(losses=args.losses, seeds=args.seeds, patients=args.patients,
              effect=args.effect, seed_sd=args.seed_sd)
    print(f"{args.sims} setups per scenario, {args.boot} replicates each; {args.losses} losses "
          f"x {args.seeds} seeds, {args.patients} patients x 3 images x 3 classes per test "
          f"set, effect {args.effect}, seed SD {args.seed_sd}, replicates {args.method}")
    print(f"{'scenario':<12} {'true tau':>8} {'mean tau':>8} {'coverage':>8} "
          f"{'transfers':>9} {'reverses':>8}")
    t0 = time.perf_counter()
    for sc in args.scenarios:
        r = study(sc, args.sims, args.boot, args.seed, args.method, **kw)
        print(f"{sc:<12} {r['true_tau']:>8.2f} {r['mean_tau']:>8.2f} {r['coverage']:>8.3f} "
              f"{r['transfers']:>9.3f} {r['reverses']:>8.3f}")
    print(f"wall {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
