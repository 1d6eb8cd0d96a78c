"""``python -m mlbench losses|calibrate``: the losses a suite can name, and whether the
leaderboard's p-values mean what they say (neither needs a results folder)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    _register_losses(sub)
    _register_calibrate(sub)


def _register_losses(sub) -> None:
    p = sub.add_parser(
        "losses", help="list the registered losses with their references",
        description="Every loss in the registry (the names a suite's grid.loss accepts; "
        "combine them as 'bce+0.1*msml').",
    )
    p.set_defaults(func=_cmd_losses)


def _cmd_losses(args) -> int:
    from tabulate import tabulate

    import losses

    rows = []
    for name in losses.list_losses():
        info = losses.get_loss_info(name)
        rows.append((name, info.reference, ", ".join(info.needs) or "-",
                     "yes" if info.batch_coupled else "", info.peer or "-"))
    print(tabulate(rows, headers=["loss", "reference", "needs", "batch-coupled", "peer"]))
    print("\nIn a suite: grid.loss: [bce, msml, 'bce+0.1*msml', {name: asl, gamma_neg: 2}]")
    return 0


def _register_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="check that the leaderboard's p-values mean what they say (no training)",
        description="Simulated A/A comparisons and true differences on a test split's real "
        "structure (labels, patient ids): type-I error at 5%% and power of the leaderboard's "
        "method beside image-level per-seed DeLong.",
    )
    p.add_argument("out", metavar="OUT", nargs="?",
                   help="output folder of a suite run: its stored test split (labels, patient "
                   "ids), its losses, seeds, mean AUC and seed SD")
    p.add_argument("--dataset", metavar="ROOT",
                   help="instead of OUT: the official test split of a dataset root (NIH layout)")
    p.add_argument("--replicates", type=int, default=400, metavar="N",
                   help="simulated replicates per scenario (default 400)")
    p.add_argument("--seed-sd", metavar="SD[,SD...]",
                   help="seed-to-seed SD of a run's mean AUC, one scenario each (default: "
                   "measured in OUT, else 0.003)")
    p.add_argument("--losses", type=int, metavar="L",
                   help="losses per replicate: a reference, L-2 null copies, one better by "
                   "--effect (default: OUT's, 3 to 6; else 4)")
    p.add_argument("--seeds", type=int, metavar="S", help="seeds (default: OUT's, else 3)")
    p.add_argument("--effect", type=float, default=0.01, metavar="DELTA",
                   help="true mean-AUC gain of the last loss, for the power (default 0.01)")
    p.add_argument("--auc", type=float, metavar="AUC",
                   help="population AUC of the reference (default: OUT's mean AUC, else 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args) -> int:
    """Print type-I error and power of the methods."""
    from mlbench.leaderboard.calibrate import calibrate, dataset_structure, results_structure

    info: dict = {}
    try:
        if args.dataset:
            structure = dataset_structure(args.dataset)
        elif args.out:
            structure, info = results_structure(args.out)
        else:
            print("error: give OUT (a results folder) or --dataset ROOT", file=sys.stderr)
            return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.seed_sd:
        sds = [float(x) for x in args.seed_sd.split(",")]
        label = "seed SD {:.3g}"
    else:
        sds = [info["seed_sd"] if info.get("seed_sd") else 0.003]
        label = "seed SD {:.3g} (as measured in OUT)" if info.get("seed_sd") else "seed SD {:.3g}"
    losses = args.losses or min(max(info.get("losses") or 4, 3), 6)
    seeds = args.seeds or info.get("seeds") or 3
    auc = args.auc or min(max(info.get("auc") or 0.8, 0.55), 0.97)
    print(f"calibrating on {structure.describe()}", flush=True)
    try:
        text = calibrate(structure, scenarios=[(label.format(sd), sd) for sd in sds],
                         replicates=args.replicates, losses=losses, seeds=seeds,
                         effect=args.effect, auc=auc, seed=args.seed, threads=args.threads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print("A calibrated method rejects about 5% of the A/A comparisons (1-8% over 400 "
          "replicates; below is conservative, above is not acceptable).")
    return 0
