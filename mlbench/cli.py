"""Command line: ``python -m mlbench <command> ...``.

Every command lives in :mod:`mlbench.commands` and adds itself through its module's
``register(subparsers)``; this module only assembles them, adds ``--version`` and
``--log-level`` and runs the chosen one. Heavy imports (torch, timm) happen inside the
commands, so ``--help`` and early errors are instant.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mlbench import __version__
from mlbench.commands import MODULES
from mlbench.commands.common import CommandError
from mlbench.logs import LEVELS, configure
from mlbench.signals import SIGTERM_EXIT, sigterm_as_exit

_EPILOG = """\
first steps:
  python -m mlbench run suites/quickstart.yaml        simulated data, every loss, ~4 min on CPU
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


def build_parser() -> argparse.ArgumentParser:
    """The ``mlbench`` parser: every command of :data:`mlbench.commands.MODULES`."""
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
    for module in MODULES:
        module.register(sub)
    _add_common_options(parser)
    return parser


def _add_common_options(parser) -> None:
    """``--version`` on ``mlbench``; ``--log-level`` on it and on every (sub-)command."""
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    configure(getattr(args, "log_level", None))
    previous = sigterm_as_exit()  # SIGTERM stops a command as Ctrl-C does (exit code 143)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(exc.details.rstrip("\n") if exc.details else f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code != SIGTERM_EXIT:
            raise
        print("\nterminated (SIGTERM)", file=sys.stderr)
        return SIGTERM_EXIT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
