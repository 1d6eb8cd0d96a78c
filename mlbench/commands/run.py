"""``python -m mlbench run``: run a suite and print its leaderboard."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from mlbench.commands.common import (
    CommandError,
    add_suite_argument,
    dangling_link,
    one_line,
    quote,
    results_db_problem,
)
from mlbench.execution import OPTIONS
from mlbench.signals import SIGTERM_EXIT as _SIGTERM_EXIT

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


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a suite (grid of backbone x head x loss x seed) and print its leaderboard",
        description="Run every run of a suite that is not finished yet, store the results in "
        "OUT/results.db and print the leaderboard.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_suite_argument(p, ", e.g. suites/quickstart.yaml")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the suite's `output`)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE[,...]",
                   help="keep only runs matching backbone/head/loss/seed, e.g. "
                   "--only loss=msml,bce --only head=linear")
    p.add_argument("--dry-run", action="store_true", help="list the runs (id, backbone, head, loss, "
                   "seed, status) and exit")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed (e.g. non-finite loss)")
    x = p.add_argument_group("execution (default: the suite's `cluster` section and `workers`)")
    for o in OPTIONS.values():  # one flag per option of the executors (mlbench.execution)
        x.add_argument(o.flag, dest=o.key, type=o.cli_type, choices=o.choices, default=None,
                       metavar=o.metavar, help=o.describe())
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
    from mlbench.suite import SuiteError

    try:
        args.overrides = _run_overrides(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    execution = {key: getattr(args, key) for key in OPTIONS}  # None: the suite's
    suite, runs, problem = load_runs(args.suite, args.overrides, args.out, args.only,
                                     dry_run=args.dry_run, workers=execution["workers"])
    if args.dry_run and args.format == "json":
        return _dry_run_json(suite, runs, problem)
    if args.dry_run:
        from mlbench.suite import describe_runs

        print(describe_runs(runs, status=_statuses(suite)))
        print(f"\n{len(runs)} runs; output {suite.output}")
        if suite.plan is not None:
            print(suite.plan.describe())
        elif suite.seeds.more:
            print(suite.seeds.describe())
        if problem:  # the listing stands; say that the runs could not start yet
            print(f"\nnote: a real run would stop here:\n{problem}", file=sys.stderr)
        return 0
    try:
        from mlbench.db import DB_NAME, check_results_db

        try:  # before anything is written to OUT
            check_results_db(suite.output / DB_NAME)
        except sqlite3.Error as exc:
            raise CommandError(results_db_problem(suite.output, exc, for_run=True)) from None
        _note_command(args, suite, runs)
        summary = execute(suite, runs, args.only, progress=not args.no_progress,
                          retry_failed=args.retry_failed, **execution)
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C; SIGTERM: the driver's SystemExit
        if isinstance(exc, SystemExit) and exc.code != _SIGTERM_EXIT:
            raise
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "terminated (SIGTERM)"
        print(f"\n{what}: finished runs are kept in {suite.output}/results.db; run the "
              "same command again to resume", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else _SIGTERM_EXIT
    runs = summary.get("runs", runs)
    try:  # the closing leaderboard reads results.db too: its errors are said the same way
        if args.format == "json":
            return _run_json(suite, runs, summary)
        from mlbench.leaderboard import leaderboard

        board = leaderboard(suite.output, per_class=False)
        print()
        print(board)
        print(f"{_summary_line(summary, len(runs))}. Results: {suite.output}/results.db")
        out = quote(suite.output)
        print(f"Per-class AUCs: python -m mlbench leaderboard {out}   "
              f"Plots: python -m mlbench report {out}")
        if summary["failed"]:
            _print_failures(suite, {r.id for r in runs})
    except sqlite3.Error as exc:
        print(f"error: {results_db_problem(suite.output, exc, for_run=True)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0 if summary["failed"] == 0 and summary["finished"] == len(runs) else 1


def _summary_line(summary: dict, n_runs: int) -> str:
    """``run``'s closing line: what was done, or that nothing was left to do."""
    finished, failed = summary["finished"], summary["failed"]
    if summary.get("to_do", 1) == 0:  # every run finished or failed before this call
        done = (f"all {n_runs} runs already finished" if finished == n_runs else
                f"{finished} of {n_runs} runs already finished")
        return ("nothing to do: " + done
                + (f", {failed} failed (--retry-failed runs them again)" if failed else ""))
    return f"{finished} finished, {failed} failed of {n_runs} runs in {summary['seconds']:.0f} s"


def load_runs(source, overrides=(), out=None, only=(), dry_run: bool = False,
              workers: int | None = None):
    """``run``'s first step, shared with :func:`mlbench.run`: the suite ``source`` (a YAML
    path or a mapping) loaded with ``overrides`` and ``out``, its runs filtered by ``only``
    (``--only`` strings), and the dataset's problem (None when there is none).

    Raises:
        CommandError: the one-line message ``run`` prints (a bad suite, key or option); a
            dataset that cannot be used (unless ``dry_run``) with its full explanation as
            ``details``.
    """
    from mlbench.suite import (
        SuiteError,
        check_names,
        data_problem,
        filter_plan,
        filter_runs,
        load_suite,
        parse_only,
    )

    overrides, only = list(overrides or ()), list(only or ())
    try:
        # A first look without torch: a missing dataset is reported at once.
        quick = load_suite(source, overrides=overrides, output=out, train_keys=False)
        problem = data_problem(quick)
        if problem and not dry_run:
            first = problem.removeprefix("error: ").strip().splitlines()[0]
            raise CommandError(first, details=problem)
        suite = load_suite(source, overrides=overrides, output=out)
        if suite.plan is not None:  # tuned: stage 1 now, stage 2 after it
            runs = filter_plan(suite.plan, parse_only(only))
        else:
            runs = filter_runs(suite.runs, parse_only(only))
        check_names(suite)
    except SuiteError as exc:
        raise CommandError(str(exc)) from None
    workers = suite.config["workers"] if workers is None else workers
    if workers < 1:
        raise CommandError(f"--workers must be >= 1, got {workers}")
    return suite, runs, problem


def execute(suite, runs, only=(), progress: bool = True, retry_failed: bool = False,
            **execution) -> dict:
    """``run``'s second step, shared with :func:`mlbench.run`: run ``runs`` of ``suite``
    (a tuned suite: both stages) and return the driver's summary (``finished``, ``failed``,
    ``seconds``; ``runs``: the runs done, for a tuned suite both stages').

    Raises:
        CommandError: results.db unusable, data set-up failed (code 2), a worker died
            (code 3); the messages ``run`` prints. KeyboardInterrupt and SystemExit (SIGTERM)
            pass through.
    """
    from mlbench.driver import WorkerDied, run_suite, run_tuned
    from mlbench.suite import parse_only

    problem = dangling_link(suite.output, "output folder", "--out DIR")
    if problem:  # mkdir would say only "File exists"
        raise CommandError(problem)
    try:
        if suite.plan is not None:  # stage 1, selection on validation, stage 2
            return run_tuned(suite, runs, only=parse_only(list(only or ())), run_suite=run_suite,
                             progress=progress, retry_failed=retry_failed, **execution)
        return run_suite(suite, runs, progress=progress, retry_failed=retry_failed, **execution)
    except sqlite3.Error as exc:  # results.db unwritable (read-only, disk full) or damaged
        raise CommandError(results_db_problem(suite.output, exc, for_run=True)) from None
    except WorkerDied as exc:  # its run is pending again
        raise CommandError(one_line(exc), code=3) from None
    except (OSError, ValueError, RuntimeError) as exc:  # data set-up (a run's errors are recorded)
        raise CommandError(one_line(exc)) from None


def _print_failures(suite, ids: set) -> None:
    """The failed runs among ``ids`` with the first line of their recorded error."""
    failed = failures(suite.output, ids)
    print(f"\n{len(failed)} failed run(s):", file=sys.stderr)
    for r in failed:
        print(f"  {r['id']}  {r['backbone']} / {r['head']} / {r['loss']} / seed {r['seed']}: "
              f"{r['error'] or '(no error recorded)'}", file=sys.stderr)
    print("Run the same command with --retry-failed to run them again.", file=sys.stderr)


def failures(output, ids: set) -> list[dict]:
    """The failed runs of ``output`` among ``ids``: id, backbone, head, loss, seed and the
    first line of the recorded error (``""`` when none)."""
    from mlbench.db import ResultsDB

    with ResultsDB(output, readonly=True) as db:
        failed = [r for r in db.runs("failed") if r["id"] in ids]
    return [{"id": r["id"], "backbone": r["backbone"], "head": r["head"], "loss": r["loss"],
             "seed": r["seed"], "error": ((r["error"] or "").strip().splitlines() or [""])[0]}
            for r in failed]


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

    from mlbench.logs import collect

    ids = {r.id for r in runs}
    st = collect(suite.output)
    print(json.dumps({"suite": suite.name, "output": str(suite.output),
                      "runs": len(runs), "finished": summary["finished"],
                      "failed": summary["failed"], "seconds": round(summary["seconds"], 1),
                      "to_do": summary.get("to_do"),
                      "failed_runs": [f for f in st["failed"] if f["id"] in ids]}, indent=1))
    return 0 if summary["failed"] == 0 and summary["finished"] == len(runs) else 1
