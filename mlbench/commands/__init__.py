"""The commands of ``python -m mlbench``, one module per room, each with
``register(subparsers)``: ``run``, ``results`` (leaderboard, report, status, export),
``methods`` (losses, calibrate), ``plan`` (a suite's power before training), ``data`` (prepare, sim), ``prefetch``
(pretrained weights ahead, for offline nodes) and ``common`` (one-line errors).
:data:`MODULES` is the order ``mlbench.cli`` mounts them in. Registering imports no torch
(``--help`` is instant); a command imports what it runs when it runs. Any package of mlbench may be imported here; nothing of mlbench imports this package
but ``mlbench.cli``.
"""

from mlbench.commands import data, methods, plan, prefetch, results, run

MODULES = (run, results, methods, plan, data, prefetch)

__all__ = ["MODULES"]
