"""The knobs of the leaderboard's seed term and test (issue 30), scored on the same simulated
setups.

Third round: the seed term :func:`mlbench.stats.seedvar.moderate` (each comparison's own seed
variance, moderated towards the other comparisons' only as far as they vouch for it), p / CI
Behrens-Fisher's; the knobs are those of ``moderate``: MIN_POOL_SEEDS (``min_seeds``),
OUTLIER_ALPHA (``alpha``: prior weight d0 min(1, p / alpha), p the upper-tail outlier p),
MAX_PRIOR_RATIO (``max_ratio``) and ``two_sided`` (the weight from min(p, 1 - p): a spread
below the others' pulled up only as far as its lower tail allows). Fourth round (the
leaderboard's rule since): ``own`` (no moderation), ``quantile`` (Student t on
``seedvar.t_df`` with the seed term at its upper bound of that quantile, Behrens-Fisher below
``seedvar.BF_BELOW_DF`` seed df) and ``floor`` (p = max(t's p, floor x Behrens-Fisher's));
``score --round 4`` scores that grid
(:func:`fourth_round`).

``draw`` simulates every scenario of the grid (losses x seeds x one loss k times as unstable
x correlation of seed effects) once on a test split -- the official one (the label table rows
of ``test_list.txt``) or CXR14-sim's -- and keeps what the statistics read (each run's mean
AUC, the test terms); ``score`` runs candidate knobs (:data:`CANDIDATES`) on those draws with
``simulate.evaluate_terms`` (the tests ``mlbench calibrate`` runs) and prints, per candidate,
the range over scenarios of the per-comparison type-I error, the unstable loss's type-I, the
FWER after Holm, the power at +0.01 with equal stability (S = 2, 3, 5) and CI coverage::

    python -m tools.seed_knobs draw --test-list ../shared/data/nih-official-split/test_list.txt \\
        --seed-sd 0.004 --replicates 400 --seed 11 --cache /tmp/knobs-official
    python -m tools.seed_knobs draw --sim-split 3000 --replicates 400 --seed 11 --cache /tmp/knobs-sim
    python -m tools.seed_knobs score --cache /tmp/knobs-official,/tmp/knobs-sim
    python -m tools.seed_knobs score --cache /tmp/knobs-official --rules leaderboard,robust
    python -m tools.seed_knobs score --cache /tmp/knobs-official --round 4 --pattern 'L*_S[35]_*.npz'

(``--rules``: rules of ``simulate.RULES`` by name, the first printed first, in place of the
knob candidates.)

Tune on draws of another ``--seed`` than the figures reported (``mlbench calibrate`` uses
seed 0 by default, the tests 1-3; the issue-30 tuning used seed 11).

Every candidate sees the same draws, so their differences are not simulation noise.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

GRID = dict(losses=(2, 4, 8, 13), seeds=(2, 3, 5), unstable=(1, 3, 10), rho=(0.0, 0.5))
BAND = (0.025, 0.075)


def _scenario_name(n_l, n_s, k, rho) -> str:
    return f"L{n_l}_S{n_s}_k{k:g}_r{rho:g}"


def draw(structure, cache: Path, replicates: int, seed_sd, seed: int = 0,
         grid: dict | None = None) -> None:
    """Simulate every scenario of ``grid`` (default :data:`GRID`) and keep its draws in
    ``cache`` (a scenario already there is kept)."""
    from mlbench.leaderboard import calibrate as cal

    cache.mkdir(parents=True, exist_ok=True)
    (cache / "split.txt").write_text(structure.describe() + "\n")
    for n_l, n_s, k, rho in itertools.product(*(grid or GRID).values()):
        path = cache / (_scenario_name(n_l, n_s, k, rho) + ".npz")
        if path.exists():
            continue
        kept: dict = {0: [], 1: []}

        def keep(part, auc, terms, truth, kept=kept):
            kept[part].append((auc, terms["diff"][0], terms["diff"][1], terms["mean"][0],
                               terms["mean"][1], truth))

        sc = cal.Scenario(n_l, n_s, seed_sd, (1.0, float(k)) if k != 1 else (), rho)
        cal.simulate(structure, sc, replicates=replicates, rules=["pooled"], seed=seed,
                     on_draw=keep)
        arrays = {}
        for part, name in ((0, "null"), (1, "power")):
            cols = list(zip(*kept[part], strict=True))
            for j, field in enumerate(("auc", "vt_d", "dt_d", "vt_m", "dt_m")):
                arrays[f"{name}_{field}"] = np.concatenate(cols[j])
            arrays[f"{name}_truth"] = cols[5][0]
        np.savez(path, losses=n_l, seeds=n_s, unstable=k, rho=rho, **arrays)
        print(f"{path.name}: {replicates} + {replicates} replicates", flush=True)


# --------------------------------------------------------------------------- candidates


KNOBS = ("min_seeds", "alpha", "max_ratio", "two_sided")  # keyword arguments of seedvar.moderate
TEST_KNOBS = ("own", "quantile", "floor")  # the fourth round's


def make_rule(own: bool = False, quantile: float | None = None, floor: float = 0.0,
              **knobs):
    """A rule of ``simulate.RULES``'s form: the third round's (moderated seed term,
    Behrens-Fisher p) with other knobs of :func:`mlbench.stats.seedvar.moderate`
    (``min_seeds`` = MIN_POOL_SEEDS, ``alpha`` = OUTLIER_ALPHA, ``max_ratio`` =
    MAX_PRIOR_RATIO, ``two_sided``); ``own``: every unit's own variance (no moderation);
    ``quantile``: Student t on ``seedvar.t_df(quantiles=((inf, quantile),))`` where the seed
    term has >= ``seedvar.BF_BELOW_DF`` df, Behrens-Fisher below; ``floor``: there p = max(t's
    p, floor x Behrens-Fisher's) (``own=True, quantile=0.25, floor=seedvar.BF_FLOOR`` is the
    leaderboard's rule)."""
    from mlbench.stats import seedvar

    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ValueError(f"Expected knobs among {list(KNOBS + TEST_KNOBS)} but got {unknown}")
    if own and knobs:
        raise ValueError(f"own=True uses no moderation, so its knobs {sorted(knobs)} would be "
                         "ignored: give one or the other")

    def rule(auc, delta):
        out = []
        for x in (delta, auc):
            v, d = x.var(axis=-1, ddof=1), np.full(x.shape[:-1], float(x.shape[-1] - 1))
            if own:
                out.append((v, d))
                continue
            m = seedvar.moderate(v, d, **knobs)
            out.append((m["var"], m["df"]))
        if quantile is None:
            return out[0], out[1], "bf"
        return out[0], out[1], ("lb", ((np.inf, quantile),), floor)

    return rule


def candidates() -> dict:
    """name -> knobs (kwargs of :func:`make_rule`); the first is the third round's rule
    (``simulate.RULES["moderated-bf"]``, its knobs as seedvar has them): the gate
    (``alpha``: prior weight d0 min(1, p / alpha)),
    the cap (``max_ratio``: prior df at most this times the own df), pooling from 2 seeds
    and the two-sided gate around it."""
    out = {"moderated-bf": {}}
    for alpha, ratio in itertools.product((3.0, 1.0, 0.5), (1.0, 2.0, 4.0)):
        if (alpha, ratio) != (3.0, 1.0):
            out[f"gate {alpha:g} cap {ratio:g}"] = dict(alpha=alpha, max_ratio=ratio)
    for alpha in (3.0, 1.0):
        out[f"two-sided gate {alpha:g}"] = dict(alpha=alpha, two_sided=True)
    out["pool from 2 seeds"] = dict(min_seeds=2)
    return out


CANDIDATES = candidates


def fourth_round() -> dict:
    """The fourth round's grid (name -> knobs of :func:`make_rule`): the third round's rule
    (moderated-bf), then the seed term {own, moderated, moderated with a two-sided gate of
    20} x the t test's bound q in {0.22, 0.25, 0.3}, and the own term with q in {0.25, 0.3}
    x a Behrens-Fisher floor in {0.5, 0.6, 0.7, 1} (p = max(t's, floor x BF's); Behrens-
    Fisher with 2 seeds in all). Score it on 3 and 5 seeds (``--pattern``): with 2 seeds
    the own-term rules are one and the same."""
    out = {"moderated-bf": {}}
    for name, kw in (("own", dict(own=True)), ("moderated", {}),
                     ("two-sided gate 20", dict(two_sided=True, alpha=20.0))):
        for q in (0.22, 0.25, 0.3):
            out[f"{name} q {q:g}"] = dict(kw, quantile=q)
    for q in (0.25, 0.3):
        for floor in (0.5, 0.6, 0.7, 1.0):
            out[f"own q {q:g} floor {floor:g}"] = dict(own=True, quantile=q, floor=floor)
    return out


def flag_rates(cache: Path, knobs: dict | None = None) -> list[dict]:
    """How often the leaderboard's unstable marker (dagger) flags a loss, per scenario of
    ``cache``: the rule of :func:`mlbench.leaderboard.analysis.unstable_flags` (outlier p of
    the seed spread of a loss's paired differences or of its mean AUC, Holm over the setup's
    comparisons / losses, below ``UNSTABLE_P``) on the null draws. Returns per scenario
    ``any`` (a setup with at least one flag), ``per_loss`` (flags / losses among the stable
    ones) and ``unstable`` (how often the unstable loss is flagged; NaN: none)."""
    from mlbench.leaderboard.analysis import UNSTABLE_P
    from mlbench.stats import holm, seedvar

    kw = {k: v for k, v in (knobs or {}).items() if k in KNOBS}
    out = []
    for path in sorted(cache.glob("L*.npz")):
        z = np.load(path)
        auc = z["null_auc"]
        n_l, k = auc.shape[1], float(z["unstable"])
        flagged = np.zeros(auc.shape[:2], bool)  # (R, L)
        for x, cols in ((auc[:, 1:] - auc[:, :1], slice(1, None)), (auc, slice(None))):
            v, d = x.var(axis=-1, ddof=1), np.full(x.shape[:-1], float(x.shape[-1] - 1))
            p = seedvar.moderate(v, d, **kw)["p"]
            adj = np.stack([holm(row) for row in p])
            flagged[:, cols] |= np.isfinite(adj) & (adj < UNSTABLE_P)
        stable = np.ones(n_l, bool)
        if k != 1:
            stable[1] = False
        out.append(dict(split=cache.name, losses=n_l, seeds=int(z["seeds"]), unstable=k,
                        rho=float(z["rho"]), any=flagged[:, stable].any(axis=1).mean(),
                        per_loss=flagged[:, stable].mean(),
                        flagged_unstable=flagged[:, 1].mean() if k != 1 else np.nan))
    return out


def score(caches: list[Path], knobs: dict, alpha: float = 0.05,
          pattern: str = "L*.npz") -> list[dict]:
    """Every candidate on every cached scenario: one row per (candidate, split, scenario).

    ``knobs``: name -> knobs of :func:`make_rule`, or name -> a rule of ``simulate.RULES``'s
    form (a callable). The tests are ``simulate.evaluate_terms``'s, the same as ``mlbench
    calibrate`` runs on the same draws."""
    from mlbench.stats import simulate as sim

    table = {name: (kw if callable(kw) else make_rule(**kw), name) for name, kw in knobs.items()}
    rows = []
    for cache in caches:
        for path in sorted(cache.glob(pattern)):
            z = np.load(path)
            n_l, n_s, k, rho = int(z["losses"]), int(z["seeds"]), float(z["unstable"]), float(z["rho"])
            res = {}
            for part in ("null", "power"):
                terms = {"diff": (z[f"{part}_vt_d"], z[f"{part}_dt_d"]),
                         "mean": (z[f"{part}_vt_m"], z[f"{part}_dt_m"])}
                res[part] = sim.evaluate_terms(z[f"{part}_auc"], terms, z[f"{part}_truth"],
                                               table, alpha)
            for name in table:
                p0, p1 = res["null"][name]["p"], res["power"][name]["p"]
                cover = res["null"][name]["cover"]
                rej = p0 < alpha
                rows.append(dict(
                    candidate=name, split=cache.name, losses=n_l, seeds=n_s, unstable=k,
                    rho=rho, type1=rej.mean(), type1_unstable=rej[:, 0].mean() if k != 1
                    else np.nan, fwer=sim.holm_any(p0, alpha).mean(),
                    power=(p1[:, -1] < alpha).mean(), coverage=cover.mean(),
                    coverage_unstable=cover[:, 1].mean() if k != 1 else np.nan,
                    null_tests=rej.size))
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per candidate: worst cases over the scenarios and the equal-stability power."""
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for name, g in df.groupby("candidate", sort=False):
        eq = g[g.unstable == 1]
        out.append(dict(
            candidate=name, type1_min=g.type1.min(), type1_max=g.type1.max(),
            unstable_max=g.type1_unstable.max(), fwer_max=g.fwer.max(),
            power_s3=eq[eq.seeds == 3].power.mean(), power_s5=eq[eq.seeds == 5].power.mean(),
            power_s2=eq[eq.seeds == 2].power.mean(), coverage_min=g.coverage.min(),
            ok=bool(g.type1.min() >= BAND[0] and g.type1.max() <= BAND[1]
                    and g.type1_unstable.max() <= BAND[1] and g.fwer.max() <= BAND[1])))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.seed_knobs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw", help="simulate the grid on one split and keep the draws")
    d.add_argument("--test-list", help="the label table rows of this list (official split)")
    d.add_argument("--sim-split", type=int, metavar="IMAGES", help="CXR14-sim's test split")
    d.add_argument("--seed-sd", type=float, help="default: calibrate's (auto)")
    d.add_argument("--replicates", type=int, default=400)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cache", required=True, type=Path)
    s = sub.add_parser("score", help="score the candidates on cached draws")
    s.add_argument("--cache", required=True, help="comma-separated cache folders")
    s.add_argument("--top", type=int, default=15, help="candidates printed (default 15)")
    s.add_argument("--csv", type=Path, help="write every (candidate, scenario) row here")
    s.add_argument("--rules", metavar="NAME[,NAME...]",
                   help="score these rules of mlbench.stats.simulate.RULES (as `mlbench "
                        "calibrate --rules`) instead of the knob candidates")
    s.add_argument("--round", type=int, choices=(3, 4), default=3,
                   help="3: the moderation knobs (CANDIDATES); 4: the fourth round's seed "
                        "term x t-test grid (fourth_round)")
    s.add_argument("--pattern", default="L*.npz",
                   help="scenario files scored (e.g. 'L*_S[35]_*.npz': 3 and 5 seeds)")
    args = ap.parse_args(argv)
    from mlbench.leaderboard import calibrate as cal

    if args.cmd == "draw":
        if bool(args.test_list) == bool(args.sim_split):
            print("error: give --test-list FILE or --sim-split IMAGES", file=sys.stderr)
            return 2
        structure = (cal.real_test_structure(args.test_list) if args.test_list
                     else cal.sim_test_structure(args.sim_split, 0))
        draw(structure, args.cache, args.replicates, args.seed_sd, args.seed)
        return 0
    from tabulate import tabulate

    if args.rules:
        from mlbench.stats import simulate as sim

        names = args.rules.split(",")
        unknown = [n for n in names if n not in sim.RULES]
        if unknown:
            print(f"error: unknown rules {unknown}; expected among {list(sim.RULES)}",
                  file=sys.stderr)
            return 2
        table = {n: sim.RULES[n][0] for n in names}
    else:
        table = CANDIDATES() if args.round == 3 else fourth_round()
    rows = score([Path(c) for c in args.cache.split(",")], table, pattern=args.pattern)
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    summ = summary(rows)
    first, rest = summ[0], sorted(summ[1:], key=lambda r: (not r["ok"], -r["power_s3"]))
    table = [[r["candidate"], "yes" if r["ok"] else "",
              *(f"{100 * r[k]:.1f}" for k in ("type1_min", "type1_max", "unstable_max",
                                               "fwer_max", "power_s2", "power_s3", "power_s5",
                                               "coverage_min"))]
             for r in [first, *rest[: args.top]]]
    print(tabulate(table, headers=["candidate", "in band", "type-I min", "type-I max",
                                   "unstable max", "FWER max", "power S=2", "power S=3",
                                   "power S=5", "coverage min"], disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
