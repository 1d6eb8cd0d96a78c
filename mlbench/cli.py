"""Command line: ``python -m mlbench <command> ...``.

Each part of mlbench contributes its sub-commands through a ``register(subparsers)``
function; this module only assembles them.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlbench",
        description="Benchmark harness for multi-label medical-imaging losses.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _register_losses(sub)
    _register_optional(sub, "mlbench.data.cli")
    return parser


def _register_optional(sub, module: str) -> None:
    """Add the sub-commands of ``module`` (its ``register(subparsers)``), if it exists yet."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return
    mod.register(sub)


def _register_losses(sub) -> None:
    p = sub.add_parser("losses", help="list the registered losses")
    p.set_defaults(func=_cmd_losses)


def _cmd_losses(args) -> int:
    import losses

    for name in losses.list_losses():
        print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
