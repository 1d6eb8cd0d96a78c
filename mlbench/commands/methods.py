"""``python -m mlbench losses|calibrate``: the losses a suite can name, and whether the
leaderboard's p-values mean what they say (neither needs a results folder)."""

from __future__ import annotations


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
        "structure (labels, patient ids), losses equally or unequally stable over seeds: "
        "type-I error at 5%%, FWER after Holm, power and CI coverage of the leaderboard's "
        "method beside the alternatives (the pooled rule before issue 30, own seed variance).",
    )
    from mlbench.calibrate import add_arguments

    add_arguments(p)
    p.set_defaults(func=lambda args: __import__("mlbench.calibrate").calibrate.main(args))
