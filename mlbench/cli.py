"""Command line: ``python -m mlbench <command> ...``.

Each part of mlbench contributes its sub-commands through a ``register(subparsers)``
function; this module only assembles them. Heavy imports (torch, timm) happen inside the
commands, so ``--help`` and early errors are instant.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys

from mlbench.signals import SIGTERM_EXIT as _SIGTERM_EXIT
from mlbench.signals import sigterm_as_exit

_EPILOG = """\
first steps:
  python -m mlbench run suites/quickstart.yaml        simulated data, every loss, ~10 min on CPU
  python -m mlbench leaderboard runs/quickstart       the table again (also --format md|csv|html)
  python -m mlbench report runs/quickstart            one HTML file with plots
  python -m mlbench losses                            the registered losses and their papers
  python -m mlbench run suites/chestxray14.yaml       the paper-style study (needs ChestX-ray14)

Run `python -m mlbench COMMAND --help` for a command's options.
"""


# Commands defined here; the others (``data``) come from their packages' ``register``.
_OWN_COMMANDS = ("run", "leaderboard", "report", "losses", "calibrate")


def build_parser(mount_others: bool = True) -> argparse.ArgumentParser:
    """The ``mlbench`` parser; ``mount_others=False`` skips the mounted sub-commands,
    whose packages import torch (seconds), when one of this module's commands is called."""
    parser = argparse.ArgumentParser(
        prog="mlbench",
        description="Benchmark harness for multi-label medical-imaging losses: runs suites "
        "of backbone x head x loss experiments on ChestX-ray14 (or its simulated stand-in) "
        "and ranks the losses by test AUC.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _register_run(sub)
    _register_leaderboard(sub)
    _register_report(sub)
    _register_losses(sub)
    _register_calibrate(sub)
    if mount_others:
        from mlbench.data.cli import register as register_data

        register_data(sub)
    return parser


# ------------------------------------------------------------------ run
_RUN_EPILOG = """\
examples:
  python -m mlbench run suites/quickstart.yaml
  python -m mlbench run suites/quickstart.yaml --dry-run --only loss=msml,bce
  python -m mlbench run suites/quickstart.yaml --set train.epochs=1 --out runs/try
  python -m mlbench run suites/chestxray14.yaml --only head=linear --workers 2
  python -m mlbench run suites/chestxray14.yaml --gpus 0,1,2,3          # one worker per GPU
  python -m mlbench run suites/chestxray14.yaml --executor ray --ray-address auto
  python -m mlbench run suites/chestxray14.yaml --executor slurm --partition gpu

Results go to OUT/results.db (SQLite; keep OUT on a local disk), written by this process
only. Rerunning the same command skips finished runs and restarts interrupted ones from
their last epoch checkpoint (OUT/checkpoints/<run id>/last.pt), so a killed job is resumed
by running it again.
"""


def _register_run(sub) -> None:
    p = sub.add_parser(
        "run", help="run a suite (grid of backbone x head x loss x seed) and print its leaderboard",
        description="Run every run of a suite that is not finished yet, store the results in "
        "OUT/results.db and print the leaderboard.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("suite", metavar="SUITE", help="suite YAML, e.g. suites/quickstart.yaml")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the suite's `output`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite key, value parsed as YAML (repeatable), "
                   "e.g. --set train.epochs=2 --set 'seeds=[0]'")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE[,...]",
                   help="keep only runs matching backbone/head/loss/seed, e.g. "
                   "--only loss=msml,bce --only head=linear")
    p.add_argument("--dry-run", action="store_true", help="list the runs (id, backbone, head, loss, "
                   "seed, status) and exit")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel worker processes on this machine (default: the suite's "
                   "`workers`, else 1)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed (e.g. non-finite loss)")
    x = p.add_argument_group("execution (default: the suite's `cluster` section)")
    x.add_argument("--executor", choices=("local", "ray", "slurm"), default=None,
                   help="local processes (default), Ray tasks, or Slurm jobs via submitit")
    x.add_argument("--gpus", metavar="IDS", default=None,
                   help="local: GPUs to use, one worker each, e.g. 0,1,2,3 (default: every "
                   "visible GPU; none: CPU)")
    x.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="ray: cluster address (default $RAY_ADDRESS, else a local instance)")
    x.add_argument("--gpus-per-run", type=float, default=None, metavar="N",
                   help="ray/slurm: GPUs per run (default 1 with CUDA, else 0)")
    x.add_argument("--cpus-per-run", type=int, default=None, metavar="N",
                   help="ray/slurm: CPUs per run (default train.threads + train.num_workers)")
    x.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="ray: retries of a run whose worker or node died (default 3)")
    x.add_argument("--partition", default=None, help="slurm: partition")
    x.add_argument("--time-min", type=int, default=None, metavar="MIN",
                   help="slurm: time limit per run in minutes (default 240; requeued and "
                   "resumed when hit)")
    x.add_argument("--mem-gb", type=int, default=None, metavar="GB", help="slurm: memory per run")
    x.add_argument("--array-parallelism", type=int, default=None, metavar="N",
                   help="slurm: most runs of the job array at once (default 16)")
    x.add_argument("--keep-checkpoints", choices=("none", "best", "all"), default=None,
                   help="what stays of a stored run's checkpoints: best.pt (default), "
                   "best.pt and last.pt, or nothing")
    x.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="checkpoint folder (default OUT/checkpoints; shared storage for "
                   "Ray/Slurm runs that should resume on another node)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from mlbench.suite import (
        SuiteError,
        check_names,
        data_problem,
        describe_runs,
        filter_runs,
        load_suite,
        parse_only,
    )

    try:
        # A first look without torch: a missing dataset is reported at once.
        quick = load_suite(args.suite, overrides=args.overrides, output=args.out, train_keys=False)
        problem = data_problem(quick)
        if problem and not args.dry_run:
            print(problem, file=sys.stderr)
            return 2
        suite = load_suite(args.suite, overrides=args.overrides, output=args.out)
        runs = filter_runs(suite.runs, parse_only(args.only))
        check_names(suite)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workers = suite.config["workers"] if args.workers is None else args.workers
    if workers < 1:
        print(f"error: --workers must be >= 1, got {workers}", file=sys.stderr)
        return 2
    cluster = {"ray_address": args.ray_address, "gpus_per_run": args.gpus_per_run,
               "cpus_per_run": args.cpus_per_run, "max_retries": args.max_retries,
               "partition": args.partition, "time_min": args.time_min, "mem_gb": args.mem_gb,
               "array_parallelism": args.array_parallelism,
               "keep_checkpoints": args.keep_checkpoints, "checkpoint_dir": args.checkpoint_dir}
    if args.dry_run:
        print(describe_runs(runs, status=_statuses(suite)))
        print(f"\n{len(runs)} runs; output {suite.output}")
        if problem:  # the listing stands; say that the runs could not start yet
            print(f"\nnote: a real run would stop here:\n{problem}", file=sys.stderr)
        return 0

    from mlbench.driver import run_suite
    from mlbench.leaderboard import leaderboard

    try:
        summary = run_suite(suite, runs, workers=args.workers, progress=not args.no_progress,
                            retry_failed=args.retry_failed, executor=args.executor,
                            gpus=args.gpus, **cluster)
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C; SIGTERM: the driver's SystemExit
        if isinstance(exc, SystemExit) and exc.code != _SIGTERM_EXIT:
            raise
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated (SIGTERM)"
        print(f"\n{what}: finished runs are kept in {suite.output}/results.db; run the "
              "same command again to resume", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else _SIGTERM_EXIT
    except sqlite3.Error as exc:  # results.db unwritable (read-only, disk full) or damaged
        print(f"error: {results_db_problem(suite.output, exc, for_run=True)}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as exc:  # data set-up (a run's errors are recorded)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print()
    print(leaderboard(suite.output, per_class=False))
    print(f"{summary['finished']} finished, {summary['failed']} failed of {len(runs)} runs "
          f"in {summary['seconds']:.0f} s. Results: {suite.output}/results.db")
    print(f"Per-class AUCs: python -m mlbench leaderboard {suite.output}   "
          f"Plots: python -m mlbench report {suite.output}")
    if summary["failed"]:
        _print_failures(suite, {r.id for r in runs})
    return 0 if summary["failed"] == 0 and summary["finished"] == len(runs) else 1


def _print_failures(suite, ids: set) -> None:
    """The failed runs among ``ids`` with the first line of their recorded error."""
    from mlbench.db import ResultsDB

    with ResultsDB(suite.output) as db:
        failed = [r for r in db.runs("failed") if r["id"] in ids]
    print(f"\n{len(failed)} failed run(s):", file=sys.stderr)
    for r in failed:
        first = (r["error"] or "").strip().splitlines()[:1] or ["(no error recorded)"]
        print(f"  {r['id']}  {r['backbone']} / {r['head']} / {r['loss']} / seed {r['seed']}: "
              f"{first[0]}", file=sys.stderr)
    print("Run the same command with --retry-failed to run them again.", file=sys.stderr)


def _statuses(suite) -> dict:
    from mlbench.db import DB_NAME, ResultsDB

    path = suite.output / DB_NAME
    if not path.exists():
        return {}
    try:
        with ResultsDB(path, readonly=True) as db:
            return {r["id"]: r["status"] for r in db.runs()}
    except sqlite3.DatabaseError as exc:
        raise CommandError(results_db_problem(path, exc, for_run=True)) from None


# ------------------------------------------------------------------ leaderboard, report
def _register_leaderboard(sub) -> None:
    p = sub.add_parser(
        "leaderboard", help="print the leaderboard of a results folder",
        description="Mean test AUC ± sd over seeds with its 95%% CI, Δ vs a reference loss "
        "with its CI, raw and Holm-adjusted p (seeds + patient-clustered test set), mAP, "
        "LRAP, ranking loss, cost, per-class AUCs; grouped by backbone/head.",
    )
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    from mlbench.leaderboard import FORMATS

    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), md (Markdown), csv (raw numbers), html")
    p.add_argument("--out", dest="dest", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--reference", metavar="LOSS",
                   help="loss to compare against (default: the suite's eval.reference, bce)")
    p.add_argument("--no-per-class", action="store_true", help="leave out per-class AUC columns")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args) -> int:
    import sqlite3

    from mlbench.leaderboard import leaderboard

    try:
        text = leaderboard(args.out, fmt=args.format, reference=args.reference,
                           per_class=not args.no_per_class)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: {results_db_problem(args.out, exc)}", file=sys.stderr)
        return 2
    if args.dest:
        from pathlib import Path

        problem = not_a_folder(args.dest, "--out FILE")
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        try:
            Path(args.dest).parent.mkdir(parents=True, exist_ok=True)
            with open(args.dest, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            print(f"error: cannot write {args.dest}: {exc.strerror or exc}", file=sys.stderr)
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
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    import sqlite3

    from mlbench.report import ReportWriteError, write_report

    problem = not_a_folder(args.output, "-o FILE") if args.output else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        dest = write_report(args.out, args.output, reference=args.reference)
    except (FileNotFoundError, ReportWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: {results_db_problem(args.out, exc)}", file=sys.stderr)
        return 2
    print(f"wrote {dest}")
    return 0


# ------------------------------------------------------------------ calibrate (mlbench.calibrate)
def _register_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="check that the leaderboard's p-values mean what they say (no training)",
        description="Simulated A/A comparisons and true differences on a test split's real "
        "structure (labels, patient ids): type-I error at 5%% and power of the leaderboard's "
        "method beside image-level per-seed DeLong.",
    )
    from mlbench.calibrate import add_arguments

    add_arguments(p)
    p.set_defaults(func=lambda args: __import__("mlbench.calibrate").calibrate.main(args))


# ------------------------------------------------------------------ losses
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
        needs = ", ".join(getattr(info, "needs", ()) or ()) or "-"
        coupled = "yes" if getattr(info, "batch_coupled", False) else ""
        rows.append((name, getattr(info, "reference", "") or "", needs, coupled))
    print(tabulate(rows, headers=["loss", "reference", "needs", "batch-coupled"]))
    print("\nIn a suite: grid.loss: [bce, msml, 'bce+0.1*msml', {name: asl, gamma_neg: 2}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(mount_others=command not in _OWN_COMMANDS).parse_args(argv)
    previous = sigterm_as_exit()  # SIGTERM stops a command as Ctrl-C does (exit code 143)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code != _SIGTERM_EXIT:
            raise
        print("\nterminated (SIGTERM)", file=sys.stderr)
        return _SIGTERM_EXIT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------ one-line errors
class CommandError(Exception):
    """A command cannot go on: ``main`` prints ``error: <message>`` (one line), exit code 2."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: an ``OSError`` as "cannot use PATH: reason"."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"cannot use {exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def results_db_problem(where, exc: BaseException, for_run: bool = False) -> str:
    """A sqlite3 error about OUT/results.db as one line that names the file and the fix."""
    from pathlib import Path

    path = Path(where)
    path = path if path.suffix == ".db" else path / "results.db"
    text = " ".join(str(exc).split())
    low = text.lower()
    if "full" in low or "disk i/o" in low:
        return (f"cannot write {path}: {text}; free space on that disk (or choose another "
                "--out DIR), then run the same command again: finished runs are kept")
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return (f"cannot write {path}: {text}; the output folder must be writable: choose "
                "another one with --out DIR")
    if str(path) in text:
        return text
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        fix = ("move it aside (or choose another --out DIR) to start a new one" if for_run
               else "restore it from a copy, or point at another results folder")
        return f"{path} is damaged or not a results database ({text}); {fix}"
    return f"{path}: {text}"


def not_a_folder(dest, option: str) -> str | None:
    """Why ``dest`` cannot be created as a file: a part of its folder path is a file."""
    from pathlib import Path

    for parent in Path(dest).parents:
        if parent.exists():
            if not parent.is_dir():
                return (f"cannot write {dest}: {parent} is a file, not a folder; choose "
                        f"another {option}")
            return None
    return None


if __name__ == "__main__":
    sys.exit(main())
