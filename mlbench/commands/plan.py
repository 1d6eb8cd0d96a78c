"""``python -m mlbench plan SUITE``: what a suite can detect, and what a target effect costs,
before any training (issue 25; :mod:`mlbench.leaderboard.design`)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from mlbench.commands.common import add_suite_argument

    p = sub.add_parser(
        "plan", help="a suite's power before its GPU-hours: SE, minimal detectable effect, "
        "seeds needed (no training)",
        description="Per comparison family of the suite (primary contrasts; exploratory): the "
        "SE of Δ, the minimal detectable effect at 80%% power after Holm over the family, the "
        "power and the seeds needed for --effect, and the GPU-hours, on the test split's real "
        "structure (labels, patients) with a seed SD measured in a results folder or stated.",
    )
    add_suite_argument(p)
    p.add_argument("--results", metavar="OUT",
                   help="a results folder: its test split, seed SD (the reference's SD over "
                   "seeds of mean AUC) and measured epoch times")
    p.add_argument("--test-list", metavar="FILE",
                   help="the official test_list.txt, for a real-data suite whose dataset root "
                   "is not here (its rows of the real label table)")
    p.add_argument("--seed-sd", type=float, metavar="SD",
                   help="SD over seeds of a run's mean AUC (default: measured in --results)")
    p.add_argument("--effect", type=float, default=0.005, metavar="DELTA",
                   help="target effect in mean AUC (default 0.005)")
    p.add_argument("--epoch-hours", type=float, metavar="H",
                   help="GPU-hours per epoch (training + validation) assumed for every run "
                   "(default: measured in --results)")
    p.add_argument("--rho", type=float, default=0.0,
                   help="correlation of seed effects between losses of one seed (default 0)")
    p.add_argument("--replicates", type=int, default=400, metavar="N",
                   help="simulated setups per design (default 400)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.add_argument("--max-seeds", type=int, default=32, metavar="S",
                   help="look for the seeds --effect needs up to S (default 32)")
    p.add_argument("--check", action="store_true",
                   help="also simulate each family's MDE with the effect drawn in the score "
                   "model (independent draws): its power should be 80%%")
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args) -> int:
    from mlbench.leaderboard import design
    from mlbench.suite import SuiteError, load_suite

    try:
        suite = load_suite(args.suite, overrides=args.overrides, train_keys=False)
        structure, info = design.structure_of(suite, args.results, args.test_list)
        seed_sd = args.seed_sd or info.get("seed_sd")
        if not seed_sd:
            raise ValueError("give --seed-sd SD (the SD over seeds of a run's mean AUC) or "
                             "--results OUT with >= 2 seeds of the reference")
        epoch_h = args.epoch_hours
        if epoch_h is None and args.results:
            epoch_h = design.epoch_hours(args.results) or None
        if args.replicates < 50:
            raise ValueError(f"Expected --replicates >= 50, got {args.replicates}")
        print(f"planning {suite.name} on {structure.describe()}", flush=True)
        rows = design.plan_table(suite, structure, seed_sd, effect=args.effect, epoch_h=epoch_h,
                                 replicates=args.replicates, seed=args.seed, rho=args.rho,
                                 max_seeds=args.max_seeds,
                                 progress=True)
    except (SuiteError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hours = ("GPU-hours: runs x train.epochs (at most; early stopping ends runs sooner) x "
             + (f"{epoch_h:g} h per epoch (stated)" if isinstance(epoch_h, float) else
                "measured hours per epoch " + ", ".join(f"{k} {v * 60:.2f} min" for k, v in
                                                        epoch_h.items()) if epoch_h else
                "-- give --epoch-hours H or --results OUT"))
    header = [f"seed SD of a run's mean AUC {seed_sd:g}"
              + (" (measured)" if not args.seed_sd else " (stated)")
              + f", seed correlation between losses {args.rho:g}; {args.replicates} simulated "
              "setups per design under the leaderboard's rule; MDE: the effect found with "
              "80% power by Holm over the family's m comparisons; 'then': with the seeds "
              "needed for the family's cells", hours]
    print(design.render_plan(rows, header), end="")
    if args.check:
        from mlbench.stats import SparseRule
        from mlbench.stats import design as dz
        from mlbench.stats import simulate as sim

        classes, _ = SparseRule().check(structure.targets, structure.groups)
        split = sim.Split.of(structure.targets[:, classes], structure.groups)
        for r in rows:
            if r["mde"] != r["mde"]:
                continue
            got = dz.check_power(split, sim.ScoreModel(), r["losses"], r["seeds"], seed_sd,
                                 r["mde"], r["comparisons"], max(args.replicates, 800),
                                 seed=args.seed + 1, rho=args.rho)
            print(f"check {r['family']}: effect +{r['mde']:.4f} drawn in the score model, "
                  f"{max(args.replicates, 800)} setups: power {100 * got:.1f}% (plan: 80%)")
    return 0
