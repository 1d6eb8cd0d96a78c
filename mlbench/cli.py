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
Every command takes --log-level DEBUG|INFO|WARNING|ERROR (default INFO, or $MLBENCH_LOG_LEVEL).

exit codes:
  0    done (run: every selected run finished)
  1    run: some runs failed (listed, with the command to retry them)
  2    bad input: suite, options, data set-up, results folder
  3    run: a worker or executor died (its run is pending again; run the same command to resume)
  130  interrupted by Ctrl-C (143: terminated by SIGTERM); run the same command to resume
"""


# Commands defined here; the others (``data``) come from their packages' ``register``.
_OWN_COMMANDS = ("run", "leaderboard", "report", "losses", "calibrate")


_OWN_COMMANDS += ("status", "export")  # mlbench.status, mlbench.tracking


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
    _register_status(sub)
    _register_export(sub)
    _register_losses(sub)
    _register_calibrate(sub)
    if mount_others:
        from mlbench.data.cli import register as register_data

        register_data(sub)
    _add_common_options(parser)
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
by running it again. Each run logs to OUT/logs/<run id>.jsonl; `mlbench status OUT` shows
what runs where, what failed and the ETA while it runs.

exit codes: 0 every selected run finished, 1 some runs failed, 2 bad input (suite, options,
data), 3 a worker or executor died (rerun to resume), 130 Ctrl-C, 143 SIGTERM.
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
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json: --dry-run's run list, or the summary of the "
                   "run (counts, failed runs) instead of the leaderboard")
    t = p.add_argument_group("experiment tracking (default: the suite's `tracking` section)")
    t.add_argument("--mlflow", action="store_true",
                   help="log each stored run to MLflow (default store sqlite:///OUT/mlflow.db)")
    t.add_argument("--mlflow-uri", metavar="URI", default=None,
                   help="MLflow tracking URI (implies --mlflow)")
    t.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard event files under OUT/tb/<run id>")
    p.add_argument("overrides_pos", nargs="*", metavar="KEY=VALUE",
                   help="suite overrides as with --set (Hydra style: train.epochs=2 'seeds=[0]')")
    _accept_key_values(p)
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
        args.overrides = _run_overrides(args)
        # A first look without torch: a missing dataset is reported at once.
        quick = load_suite(args.suite, overrides=args.overrides, output=args.out, train_keys=False)
        problem = data_problem(quick)
        if problem and not args.dry_run:
            print(problem, file=sys.stderr)
            return 2
        suite = load_suite(args.suite, overrides=args.overrides, output=args.out)
        if suite.plan is not None:  # tuned (mlbench.tune): stage 1 now, stage 2 after it
            from mlbench.tune import filter_plan

            runs = filter_plan(suite.plan, parse_only(args.only))
        else:
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
    if args.dry_run and args.format == "json":
        return _dry_run_json(suite, runs, problem)
    if args.dry_run:
        print(describe_runs(runs, status=_statuses(suite)))
        print(f"\n{len(runs)} runs; output {suite.output}")
        if suite.plan is not None:
            print(suite.plan.describe())
        if problem:  # the listing stands; say that the runs could not start yet
            print(f"\nnote: a real run would stop here:\n{problem}", file=sys.stderr)
        return 0

    from mlbench.driver import WorkerDied, run_suite
    from mlbench.leaderboard import leaderboard

    try:
        _note_command(args, suite, runs)
        if suite.plan is not None:  # stage 1, selection on validation, stage 2
            from mlbench.tune import run_tuned

            summary = run_tuned(suite, runs, only=parse_only(args.only), run_suite=run_suite,
                                workers=args.workers, progress=not args.no_progress,
                                retry_failed=args.retry_failed, executor=args.executor,
                                gpus=args.gpus, **cluster)
            runs = summary["runs"]
        else:
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
    except WorkerDied as exc:  # its run is pending again
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (OSError, ValueError, RuntimeError) as exc:  # data set-up (a run's errors are recorded)
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if args.format == "json":
        return _run_json(suite, runs, summary)
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
    p.add_argument("--all-settings", action="store_true",
                   help="tuned suites: also every tried setting's validation AUC (what selection "
                   "used) and test AUC (with --format csv: that table alone)")
    p.set_defaults(func=_cmd_leaderboard)


def _cmd_leaderboard(args) -> int:
    import sqlite3

    from mlbench.leaderboard import leaderboard

    try:
        text = leaderboard(args.out, fmt=args.format, reference=args.reference,
                           per_class=not args.no_per_class, all_settings=args.all_settings)
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
        rows.append((name, info.reference, ", ".join(info.needs) or "-",
                     "yes" if info.batch_coupled else "", info.peer or "-"))
    print(tabulate(rows, headers=["loss", "reference", "needs", "batch-coupled", "peer"]))
    print("\nIn a suite: grid.loss: [bce, msml, 'bce+0.1*msml', {name: asl, gamma_neg: 2}]")
    return 0


# ------------------------------------------------------------------ status, export, conventions
def _register_status(sub) -> None:
    p = sub.add_parser(
        "status", help="what is running where, what failed, how long is left",
        description="Runs by status per setup (backbone/head), the running runs (worker, device, "
        "epoch, elapsed, ETA from the finished runs' durations) and the failed runs with the "
        "first line of their error and the command to retry them. Reads OUT/results.db "
        "read-only, so it works while a run writes it.",
    )
    p.add_argument("out", metavar="OUT", help="output folder of a suite run (holds results.db)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json (one object; with --watch one line per update)")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=float, default=5.0, metavar="S",
                   help="seconds between refreshes with --watch (default 5)")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args) -> int:
    from mlbench.status import main as status

    return status(args.out, fmt=args.format, watch=args.watch, interval=args.interval)


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
    import sqlite3

    from mlbench.tracking import TrackingError, export

    try:
        counts = export(args.out, args.tracker, uri=args.uri, experiment=args.experiment,
                        checkpoint_dir=args.checkpoint_dir, artifacts=not args.no_artifacts)
    except (FileNotFoundError, sqlite3.DatabaseError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.tracker}: {counts['logged']} logged, {counts['replaced']} replaced, "
          f"{counts['unchanged']} unchanged")
    return 0


def _add_common_options(parser) -> None:
    """``--version`` on ``mlbench``; ``--log-level`` on it and on every (sub-)command."""
    from mlbench import __version__
    from mlbench.logs import LEVELS

    parser.add_argument("--version", action="version", version=f"mlbench {__version__}")

    def add(p, default):
        if any("--log-level" in a.option_strings for a in p._actions):
            return
        p.add_argument("--log-level", type=str.upper, choices=LEVELS, default=default,
                       metavar="LEVEL", help="DEBUG, INFO (default), WARNING or ERROR")
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    add(child, argparse.SUPPRESS)

    add(parser, None)


def _accept_key_values(p) -> None:
    """``KEY=VALUE`` words anywhere after the command are overrides (argparse gives the
    positional list only the words right after SUITE)."""
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extra = parse(args, namespace)
        kv = [e for e in extra if "=" in e and not e.startswith("-")]
        if kv:
            ns.overrides_pos = list(getattr(ns, "overrides_pos", None) or []) + kv
        return ns, [e for e in extra if e not in kv]

    p.parse_known_args = parse_known_args


def _configure_logging(args) -> None:
    from mlbench.logs import configure

    configure(getattr(args, "log_level", None))


def _run_overrides(args) -> list[str]:
    """``--set`` values, then ``KEY=VALUE`` positionals, then the tracking flags."""
    from mlbench.suite import SuiteError

    extra = list(getattr(args, "overrides_pos", None) or [])
    for item in extra:
        if "=" not in item or item.startswith("="):
            raise SuiteError(f"expected KEY=VALUE (a suite override), got {item!r}")
    out = list(args.overrides) + extra
    if getattr(args, "mlflow", False) or getattr(args, "mlflow_uri", None):
        out.append("tracking.mlflow=true")
    if getattr(args, "mlflow_uri", None):
        out.append(f"tracking.mlflow_uri={args.mlflow_uri}")
    if getattr(args, "tensorboard", False):
        out.append("tracking.tensorboard=true")
    return out


def _note_command(args, suite, runs) -> None:
    from mlbench.logs import record_command

    record_command(suite.output, args.suite, args.overrides, [r.id for r in runs])


def _dry_run_json(suite, runs, problem) -> int:
    import json

    status = _statuses(suite)
    rows = [{"id": r.id, "backbone": r.backbone, "head": r.head, "loss": r.loss, "seed": r.seed,
             "status": status.get(r.id, "new"), "config": r.config} for r in runs]
    print(json.dumps({"suite": suite.name, "output": str(suite.output), "runs": rows,
                      "problem": problem or None}, indent=1, default=str))
    return 0


def _run_json(suite, runs, summary) -> int:
    import json

    from mlbench.status import collect

    ids = {r.id for r in runs}
    st = collect(suite.output)
    print(json.dumps({"suite": suite.name, "output": str(suite.output),
                      "runs": len(runs), "finished": summary["finished"],
                      "failed": summary["failed"], "seconds": round(summary["seconds"], 1),
                      "failed_runs": [f for f in st["failed"] if f["id"] in ids]}, indent=1))
    return 0 if summary["failed"] == 0 and summary["finished"] == len(runs) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(mount_others=command not in _OWN_COMMANDS).parse_args(argv)
    _configure_logging(args)
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
