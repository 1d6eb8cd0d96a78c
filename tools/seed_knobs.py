"""How the knobs of the leaderboard's seed term were chosen (issue 30): candidates scored on
the same simulated setups.

``draw`` simulates every scenario of the grid (losses x seeds x one loss k times as unstable
x correlation of seed effects) once on a test split -- the official one (the label table rows
of ``test_list.txt``) or CXR14-sim's -- and keeps what the statistics read (each run's mean
AUC, the test terms); ``score`` runs candidate rules (:data:`CANDIDATES`: df quantiles,
pooling cap, soft gate, pooling from 2 seeds) on those draws and prints, per candidate, the
range over scenarios of the per-comparison type-I error, the unstable loss's type-I, the FWER
after Holm, the power at +0.01 with equal stability (S = 2, 3, 5) and CI coverage; ``tail``
prints the bound the seed-dominated case puts on the df quantiles (:func:`tail_rates`)::

    python -m tools.seed_knobs draw --test-list ../shared/data/nih-official-split/test_list.txt \\
        --seed-sd 0.004 --replicates 3000 --cache /tmp/knobs-official
    python -m tools.seed_knobs draw --sim-split 3000 --replicates 3000 --cache /tmp/knobs-sim
    python -m tools.seed_knobs score --cache /tmp/knobs-official,/tmp/knobs-sim
    python -m tools.seed_knobs tail

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


def make_rule(quantiles=None, min_seeds=None, alpha=None, max_ratio=None):
    """A rule of ``simulate.RULES``'s form: the leaderboard's with other knobs."""
    from mlbench.stats import seedvar

    kw = {k: v for k, v in (("min_seeds", min_seeds), ("alpha", alpha),
                            ("max_ratio", max_ratio)) if v is not None}

    def df(vs, ds, vt, dt):
        return seedvar.t_df(vs, ds, vt, dt, quantiles=quantiles)

    def rule(auc, delta):
        out = []
        for x in (delta, auc):
            v, d = x.var(axis=-1, ddof=1), np.full(x.shape[:-1], float(x.shape[-1] - 1))
            m = seedvar.moderate(v, d, **kw)
            out.append((m["var"], m["df"]))
        return out[0], out[1], df

    return rule


def q_table(q1, q2, q3, q4, q5=None):
    """DF_QUANTILES of the seed term's df: below 1.5, 2.5, 3.5, (5.5,) more."""
    if q5 is None:
        return ((1.5, q1), (2.5, q2), (3.5, q3), (np.inf, q4))
    return ((1.5, q1), (2.5, q2), (3.5, q3), (5.5, q4), (np.inf, q5))


def candidates() -> dict:
    """name -> knobs (kwargs of :func:`make_rule`); the first is the leaderboard's rule.

    The df quantiles are bounded by :func:`tail_rates` (with 1, 2, 3, >= 4 seed df the
    0.5% tail exceeds 0.9% beyond q = 0.05-0.08, 0.15, 0.25, 0.4), so the grid spans those
    bounds and the gate (``alpha``: prior weight min(1, p / alpha)) and cap (``max_ratio``)
    around the leaderboard's."""
    from mlbench.stats import seedvar

    out = {"leaderboard": dict(quantiles=seedvar.DF_QUANTILES)}
    for q2, q3, q4 in itertools.product((0.15, 0.2), (0.2, 0.25), (0.3, 0.4)):
        for alpha, ratio in ((3.0, 1.0), (1.0, 1.0), (0.5, 1.0), (3.0, 2.0), (1.0, 2.0),
                             (0.5, 2.0), (1.0, 3.0), (0.5, 3.0)):
            out[f"q .05/{q2}/{q3}/{q4} gate {alpha:g} cap {ratio:g}"] = dict(
                quantiles=q_table(0.05, q2, q3, q4), alpha=alpha, max_ratio=ratio)
    for q1 in (0.08, 0.1, 0.15, 0.2, 0.3):
        out[f"q {q1}/.15/.2/.3"] = dict(quantiles=q_table(q1, 0.15, 0.2, 0.3))
    out["pool from 2 seeds"] = dict(quantiles=seedvar.DF_QUANTILES, min_seeds=2)
    return out


def tail_rates(d: int, q: float, shares=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999),
               test_df=(8, 20, 50), draws: int = 200_000, seed: int = 7) -> dict:
    """Rejection rates at 5% and 0.5% (the tail Holm uses) of the t test with
    :func:`mlbench.stats.seedvar.t_df` at quantile ``q`` for a seed term on ``d`` df, worst
    over the seed term's true share of the variance (``shares``) and the test term's df
    (``test_df``): {"5%": rate, "0.5%": rate}. The seed-dominated case is where
    Satterthwaite with estimated weights fails (a chance-small seed variance, a large df)."""
    from scipy import stats as _st

    from mlbench.stats import seedvar

    rng = np.random.default_rng(seed)
    worst = {"5%": 0.0, "0.5%": 0.0}
    for share in shares:
        for dt in test_df:
            x = rng.normal(0.0, 1.0, draws)
            vs = share * rng.chisquare(d, draws) / d
            vt = (1 - share) * rng.chisquare(dt, draws) / dt
            df = seedvar.t_df(vs, d, vt, dt, quantiles=((np.inf, q),))
            p = 2 * _st.t.sf(np.abs(x) / np.sqrt(vs + vt), df)
            worst["5%"] = max(worst["5%"], float(np.mean(p < 0.05)))
            worst["0.5%"] = max(worst["0.5%"], float(np.mean(p < 0.005)))
    return worst


CANDIDATES = candidates


def flag_rates(cache: Path, knobs: dict | None = None) -> list[dict]:
    """How often the leaderboard's unstable marker (dagger) flags a loss, per scenario of
    ``cache``: the rule of :func:`mlbench.leaderboard.analysis.unstable_flags` (outlier p of
    the seed spread of a loss's paired differences or of its mean AUC, Holm over the setup's
    comparisons / losses, below ``UNSTABLE_P``) on the null draws. Returns per scenario
    ``any`` (a setup with at least one flag), ``per_loss`` (flags / losses among the stable
    ones) and ``unstable`` (how often the unstable loss is flagged; NaN: none)."""
    from mlbench.leaderboard.analysis import UNSTABLE_P
    from mlbench.stats import holm, seedvar

    kw = {k: v for k, v in (knobs or {}).items() if k in ("min_seeds", "alpha", "max_ratio")}
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


def _holm_any(p, alpha=0.05):
    c = p.shape[-1]
    return np.sort(p, axis=-1)[..., 0] <= alpha / c


GATE_KEYS = ("min_seeds", "alpha", "max_ratio")


def _gate(knobs: dict) -> tuple:
    return tuple(knobs.get(k) for k in GATE_KEYS)


def score(caches: list[Path], knobs: dict, alpha: float = 0.05,
          pattern: str = "L*.npz") -> list[dict]:
    """Every candidate on every cached scenario: one row per (candidate, split, scenario).

    The moderated seed terms depend only on the gate knobs (``GATE_KEYS``), so they are
    computed once per gate and cache file; the quantile table only changes the df."""
    from scipy import stats as _st

    from mlbench.stats import seedvar

    gates: dict = {}
    for name, kw in knobs.items():
        gates.setdefault(_gate(kw), []).append(name)
    rows = []
    for cache in caches:
        for path in sorted(cache.glob(pattern)):
            z = np.load(path)
            n_l, n_s, k, rho = int(z["losses"]), int(z["seeds"]), float(z["unstable"]), float(z["rho"])
            for gate, names in gates.items():
                kw = {key: v for key, v in zip(GATE_KEYS, gate, strict=True) if v is not None}
                res: dict = {name: {} for name in names}
                for part in ("null", "power"):
                    auc = z[f"{part}_auc"]
                    delta = auc[:, 1:] - auc[:, :1]
                    truth = z[f"{part}_truth"]
                    for key, x, vt, dt, centre in (
                            ("p", delta, z[f"{part}_vt_d"], z[f"{part}_dt_d"], 0.0),
                            ("cover", auc, z[f"{part}_vt_m"], z[f"{part}_dt_m"],
                             np.asarray(truth)[None, :])):
                        if key == "cover" and part == "power":
                            continue
                        v = x.var(axis=-1, ddof=1)
                        m = seedvar.moderate(v, np.full(v.shape, float(n_s - 1)), **kw)
                        vs, ds = m["var"] / n_s, m["df"]
                        t = np.abs(x.mean(-1) - centre) / np.sqrt(vs + vt)
                        for name in names:
                            df = seedvar.t_df(vs, ds, vt, dt,
                                              quantiles=knobs[name].get("quantiles"))
                            pv = 2 * _st.t.sf(t, df)
                            res[name][(part, key)] = pv if key == "p" else pv >= alpha
                for name in names:
                    p0, p1 = res[name][("null", "p")], res[name][("power", "p")]
                    cover = res[name][("null", "cover")]
                    rej = p0 < alpha
                    rows.append(dict(
                        candidate=name, split=cache.name, losses=n_l, seeds=n_s, unstable=k,
                        rho=rho, type1=rej.mean(), type1_unstable=rej[:, 0].mean() if k != 1
                        else np.nan, fwer=_holm_any(p0, alpha).mean(),
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
    d.add_argument("--replicates", type=int, default=3000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cache", required=True, type=Path)
    s = sub.add_parser("score", help="score the candidates on cached draws")
    s.add_argument("--cache", required=True, help="comma-separated cache folders")
    s.add_argument("--top", type=int, default=15, help="candidates printed (default 15)")
    s.add_argument("--csv", type=Path, help="write every (candidate, scenario) row here")
    t = sub.add_parser("tail", help="worst 5%% and 0.5%% rates of the df rule per seed df "
                       "and quantile (seed-dominated setups, no simulation of runs)")
    t.add_argument("--draws", type=int, default=200_000)
    args = ap.parse_args(argv)
    if args.cmd == "tail":
        for d, qs in ((1, (0.05, 0.08, 0.1, 0.15, 0.2)), (2, (0.15, 0.2, 0.25, 0.3)),
                      (3, (0.2, 0.25, 0.3, 0.4)), (4, (0.3, 0.4, 0.5))):
            for q in qs:
                r = tail_rates(d, q, draws=args.draws)
                print(f"seed df {d}, q {q:g}: worst type-I {100 * r['5%']:.2f}% at 5%, "
                      f"{100 * r['0.5%']:.2f}% at 0.5%")
        return 0
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

    rows = score([Path(c) for c in args.cache.split(",")], CANDIDATES())
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
