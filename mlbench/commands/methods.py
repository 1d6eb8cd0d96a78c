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
    former = {new: old for old, new in losses.loss_aliases().items()}
    for name in losses.list_losses():
        info = losses.get_loss_info(name)
        label = f"{name} (was {former[name]})" if name in former else name
        rows.append((label, info.reference, ", ".join(info.needs) or "-",
                     "yes" if info.batch_coupled else "", info.peer or "-"))
    print(tabulate(rows, headers=["loss", "reference", "needs", "batch-coupled", "peer"]))
    print("\nIn a suite: grid.loss: [bce, msml, 'bce+0.1*msml', {name: asl, gamma_neg: 2}]")
    return 0


def _register_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="check that the leaderboard's p-values mean what they say (no training)",
        description="Simulated A/A comparisons and true differences on a test split's real "
        "structure (labels, patient ids), losses equally or unequally stable over seeds: "
        "type-I error at 5%%, FWER after Holm, power and CI coverage of the leaderboard's "
        "method beside the alternatives (the pooled rule before issue 30, own seed variance).",
    )
    p.add_argument("out", metavar="OUT", nargs="?",
                   help="output folder of a suite run: its stored test split (labels, patient "
                   "ids), its losses, seeds, mean AUC and each loss's own seed spread")
    p.add_argument("--test-set", metavar="NAME",
                   help="with OUT: one of the test sets its runs were scored on "
                   "(eval.test_sets, e.g. nih-expert; default nih, the runs' own test split)")
    p.add_argument("--dataset", metavar="ROOT",
                   help="instead of OUT: the official test split of a dataset root (NIH layout)")
    p.add_argument("--test-list", metavar="FILE",
                   help="instead of OUT: the images of FILE (e.g. the official test_list.txt) "
                   "in the real label table shipped with torchxrayvision")
    p.add_argument("--sim-split", type=int, metavar="IMAGES",
                   help="instead of OUT: the test split CXR14-sim writes for IMAGES images")
    p.add_argument("--replicates", type=int, default=400, metavar="N",
                   help="null replicates per scenario, and as many for the power (default 400)")
    p.add_argument("--seed-sd", metavar="SD[,SD...]",
                   help="SD over seeds of a (stable) run's mean AUC on the test split, one "
                   "scenario each (default: measured in OUT, else 0.004 or, on a small split "
                   "where a run's own test-set noise alone exceeds that, 1.25 x that floor)")
    p.add_argument("--losses", metavar="L[,L...]",
                   help="losses per setup: the reference and L-1 compared with it (default: "
                   "OUT's, else 4)")
    p.add_argument("--seeds", metavar="S[,S...]", help="seeds (default: OUT's, else 3)")
    p.add_argument("--unstable", metavar="K[,K...]", default="1",
                   help="loss 1 K times as unstable as the others (SD over seeds), one scenario "
                   "each; 1: all equally stable (default 1)")
    p.add_argument("--spread", metavar="K0,K1,...",
                   help="seed SD of every loss as a multiple of --seed-sd, reference first "
                   "(replaces --unstable; default with OUT: the spreads measured there)")
    p.add_argument("--rho", metavar="R[,R...]", default="0",
                   help="correlation of the seed effects of the losses of one seed (default 0)")
    p.add_argument("--effect", type=float, default=0.01, metavar="DELTA",
                   help="true mean-AUC gain of the last loss, for the power (default 0.01)")
    p.add_argument("--effect-class", metavar="NAME[,NAME]",
                   help="confine the effect to these findings (e.g. Hernia), same mean-AUC gain")
    p.add_argument("--auc", type=float, metavar="AUC",
                   help="population AUC of the reference (default: OUT's mean AUC, else 0.8)")
    p.add_argument("--loss-patient-sd", type=float, metavar="SD",
                   help="SD of the loss x patient effect of the score model (default 0.3)")
    p.add_argument("--run-patient-sd", type=float, metavar="SD",
                   help="SD of the run x patient effect (default 0.3)")
    p.add_argument("--rules", metavar="NAME[,NAME...]",
                   help="which rules to score (default: all; 'pooled' is the leaderboard's rule "
                   "before issue 30)")
    p.add_argument("--engine", choices=("patient", "full"), default="patient",
                   help="patient: per-patient influence sums drawn with their exact covariances "
                   "(fast); full: every image's score (slow, the check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.set_defaults(func=_cmd_calibrate)


def _floats(text: str | None, kind=float) -> list | None:
    return None if text is None else [kind(x) for x in str(text).split(",") if x.strip()]


def _structure(args):
    from mlbench.leaderboard import calibrate as cal

    if args.test_set and not args.out:
        raise ValueError("--test-set NAME chooses among the test sets of OUT: give OUT")
    if args.dataset:
        return cal.dataset_structure(args.dataset), {}
    if args.test_list:
        return cal.real_test_structure(args.test_list), {}
    if args.sim_split:
        return cal.sim_test_structure(args.sim_split, 0), {}
    if args.out:
        return cal.results_structure(args.out, args.test_set)
    return None, {}


def _cmd_calibrate(args) -> int:
    """Type-I error, FWER, power and CI coverage of the rules."""
    from mlbench.leaderboard import calibrate as cal
    from mlbench.stats import simulate as sim

    try:
        structure, info = _structure(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if structure is None:
        print("error: give OUT (a results folder), --dataset ROOT, --test-list FILE or "
              "--sim-split IMAGES", file=sys.stderr)
        return 2
    if info:
        print(f"seed spreads in {args.out} (block of {info['losses']} losses x "
              f"{info['seeds']} seeds):")
        print(cal.spread_report(info))
    try:
        sds = _floats(args.seed_sd) or [info.get("seed_sd")]
        losses = _floats(args.losses, int) or [max(info.get("losses") or 4, 2)]
        seeds = _floats(args.seeds, int) or [max(info.get("seeds") or 3, 2)]
        measured = bool(info) and not args.spread and args.unstable == "1"
        spread = _floats(args.spread) or (info.get("spread") if measured else None)
        if spread and len(spread) < max(losses):
            spread = list(spread) + [1.0] * (max(losses) - len(spread))
        auc = args.auc or min(max(info.get("auc") or 0.8, 0.55), 0.97)
        model = sim.ScoreModel(auc=auc, **{k: v for k, v in (
            ("loss_patient_sd", args.loss_patient_sd), ("run_patient_sd", args.run_patient_sd))
            if v is not None})
        effect_classes = ()
        if args.effect_class:
            effect_classes = cal.class_indices(structure, args.effect_class.split(","))
        scenarios = cal.scenarios_of(losses, seeds, sds, _floats(args.unstable),
                                     _floats(args.rho), spread, args.effect, effect_classes,
                                     clip=measured)
        rules = args.rules.split(",") if args.rules else None
        print(f"calibrating on {structure.describe()}", flush=True)
        text = cal.calibrate(structure, scenarios, replicates=args.replicates, model=model,
                             engine=args.engine, rules=rules, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print("A calibrated rule rejects about 5% of the A/A comparisons (2.5-7.5% over >= 800; "
          "below is conservative, above is not acceptable), of the unstable loss's too, and "
          "keeps the FWER after Holm <= 7.5%.")
    return 0
