"""``python -m mlbench leaderboard|report|status|export``: what a results folder holds."""

from __future__ import annotations

import sqlite3
import sys
import time

from mlbench.commands.common import not_a_folder, results_db_problem, write_problem
from mlbench.logs import STATUS_FORMATS, collect, render


def register(sub) -> None:
    _register_leaderboard(sub)
    _register_report(sub)
    _register_status(sub)
    _register_export(sub)


def _register_leaderboard(sub) -> None:
    p = sub.add_parser(
        "leaderboard", help="print the leaderboard of a results folder",
        description="Mean test AUC ± sd over seeds with its 95% CI, Δ vs a reference loss "
        "with its CI, raw and Holm-adjusted p (seeds + patient-clustered test set), mAP, "
        "LRAP, ranking loss, cost, per-class AUCs; grouped by backbone/head.",
    )
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    from mlbench.leaderboard import FORMATS

    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), md (Markdown), csv (raw numbers), html, json")
    p.add_argument("--out", dest="dest", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--reference", metavar="LOSS",
                   help="loss to compare against (default: the suite's eval.reference, bce)")
    p.add_argument("--no-per-class", action="store_true", help="leave out per-class AUC columns")
    p.add_argument("--no-strata", action="store_true",
                   help="leave out the strata tables (per-class Δ of the primary contrasts, "
                   "without the sparsest class, validation vs test, view and label-count "
                   "strata): faster on a results.db whose runs have no stored strata yet")
    p.add_argument("--all-settings", action="store_true",
                   help="tuned suites: also every tried setting's validation AUC (what selection "
                   "used) and test AUC (with --format csv: that table alone)")
    p.add_argument("--primary", action="append", metavar="'A vs B'",
                   help="a primary contrast (repeatable; default: the suite's analysis.primary)")
    p.add_argument("--margin", type=float, metavar="M",
                   help="equivalence margin in mean AUC (default: the suite's analysis.margin)")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args) -> int:
    from mlbench.leaderboard import leaderboard

    try:
        analysis = None
        if args.primary or args.margin is not None:
            from mlbench.suite import parse_contrasts

            parse_contrasts(args.primary or [])  # a malformed contrast: one line, exit 2
            analysis = {"primary": args.primary or [], "margin": args.margin}
        text = leaderboard(args.out, fmt=args.format, reference=args.reference,
                           per_class=not args.no_per_class, all_settings=args.all_settings,
                           analysis=analysis, strata=not args.no_strata)
    except ValueError as exc:  # SuiteError: a malformed --primary
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: {results_db_problem(args.out, exc)}", file=sys.stderr)
        return 2
    if args.dest:
        problem = not_a_folder(args.dest, "--out FILE")
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        from mlbench.files import atomic_write

        try:  # whole or not at all: a kill or a full disk leaves the previous file
            atomic_write(args.dest, text, remove_dead=True)
        except OSError as exc:
            print(f"error: {write_problem(args.dest, exc, '--out FILE')}", file=sys.stderr)
            return 2
        print(f"wrote {args.dest}")
    else:
        print(text, end="")
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write a self-contained HTML report with plots",
        description="One HTML file (plots embedded): leaderboard, per-class AUC heat map, ROC "
        "curves, training curves.",
    )
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    p.add_argument("-o", "--output", metavar="FILE", help="HTML file (default OUT/report.html)")
    p.add_argument("--reference", metavar="LOSS", help="loss to compare against")
    p.add_argument("--no-strata", action="store_true", help="leave out the strata tables")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from mlbench.leaderboard.report import ReportWriteError, write_report

    problem = not_a_folder(args.output, "-o FILE") if args.output else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        dest = write_report(args.out, args.output, reference=args.reference,
                            strata=not args.no_strata)
    except (FileNotFoundError, ReportWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: {results_db_problem(args.out, exc)}", file=sys.stderr)
        return 2
    print(f"wrote {dest}")
    return 0


def _register_status(sub) -> None:
    p = sub.add_parser(
        "status", help="what is running where, what failed, how long is left",
        description="Runs by status per setup (backbone/head), the running runs (worker, device, "
        "epoch, elapsed, ETA from the finished runs' training time, not worker start-up) and the failed runs with the "
        "first line of their error and the command to retry them. Reads OUT/results.db "
        "read-only, so it works while a run writes it.",
    )
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    p.add_argument("--format", choices=STATUS_FORMATS, default="text",
                   help="text (default) or json (one object; with --watch one line per update)")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=float, default=5.0, metavar="S",
                   help="seconds between refreshes with --watch (default 5)")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args) -> int:
    return print_status(args.out, fmt=args.format, watch=args.watch, interval=args.interval)


def print_status(out, fmt: str = "text", watch: bool = False, interval: float = 5.0,
                 stream=None, max_updates: int | None = None) -> int:
    """The ``status`` command; returns its exit code (0, or 2 without a results.db).

    With ``watch``, the text screen is redrawn every ``interval`` seconds (JSON: one line
    per update) until Ctrl-C; ``max_updates`` stops it earlier (tests).
    """
    stream = stream or sys.stdout
    updates = 0
    try:
        while True:
            try:
                st = collect(out)
            except (FileNotFoundError, sqlite3.DatabaseError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            text = render(st, fmt, one_line=watch)
            if watch and fmt == "text" and getattr(stream, "isatty", lambda: False)():
                stream.write("\033[H\033[2J")
            stream.write(text + "\n")
            stream.flush()
            updates += 1
            if not watch or (max_updates is not None and updates >= max_updates):
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _register_export(sub) -> None:
    p = sub.add_parser(
        "export", help="fill an experiment tracker (MLflow, TensorBoard) from a results.db",
        description="Log every stored run of OUT/results.db (read-only) to MLflow or as "
        "TensorBoard event files, as `run --mlflow/--tensorboard` does while it runs. "
        "Idempotent by run id: a run already logged unchanged is skipped.",
    )
    p.add_argument("tracker", choices=("mlflow", "tensorboard"), help="where to log")
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    p.add_argument("--uri", metavar="URI", default=None,
                   help="mlflow: tracking URI (default sqlite:///OUT/mlflow.db)")
    p.add_argument("--experiment", metavar="NAME", default=None,
                   help="mlflow: experiment (default: the suite's name)")
    p.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="where <run id>/best.pt is (default OUT/checkpoints)")
    p.add_argument("--no-artifacts", action="store_true",
                   help="mlflow: do not log the best checkpoints")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from mlbench.logs import TrackingError, export

    try:
        counts = export(args.out, args.tracker, uri=args.uri, experiment=args.experiment,
                        checkpoint_dir=args.checkpoint_dir, artifacts=not args.no_artifacts)
    except (FileNotFoundError, sqlite3.DatabaseError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.tracker}: {counts['logged']} logged, {counts['replaced']} replaced, "
          f"{counts['unchanged']} unchanged")
    return 0
