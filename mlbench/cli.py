"""Command line: ``python -m mlbench <command> ...``.

Each part of mlbench contributes its sub-commands through a ``register(subparsers)``
function; this module only assembles them. Heavy imports (torch, timm) happen inside the
commands, so ``--help`` and early errors are instant.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mlbench.commands import methods, results, run
from mlbench.commands.common import CommandError
from mlbench.signals import SIGTERM_EXIT as _SIGTERM_EXIT
from mlbench.signals import sigterm_as_exit

_EPILOG = """\
first steps:
  python -m mlbench run suites/quickstart.yaml        simulated data, every loss, ~8 min on CPU
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


# Commands of mlbench.commands (torch-free to mount); the others (``data``) come from their
# packages' ``register``.
_OWN_COMMANDS = ("run", "leaderboard", "report", "losses", "calibrate", "status", "export")


def build_parser(mount_others: bool = True) -> argparse.ArgumentParser:
    """The ``mlbench`` parser; ``mount_others=False`` skips the mounted sub-commands,
    whose packages import torch (seconds), when one of :data:`_OWN_COMMANDS` is called."""
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
    run.register(sub)  # run
    results.register(sub)  # leaderboard, report, status, export
    methods.register(sub)  # losses, calibrate
    if mount_others:
        from mlbench.data.cli import register as register_data

        register_data(sub)
    _add_common_options(parser)
    return parser


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


def _configure_logging(args) -> None:
    from mlbench.logs import configure

    configure(getattr(args, "log_level", None))


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


if __name__ == "__main__":
    sys.exit(main())
