"""mlbench: a benchmark harness for multi-label medical-imaging losses.

Packages by stage of a run: ``suite`` (YAML -> run configs; what to try and what was
chosen), ``driver`` (claim -> submit -> store, executors, the one-run worker) over ``data``,
``models`` and ``train`` (one model trained and evaluated), ``db`` (the results store),
``stats`` (metrics and comparisons), ``logs`` (console, run files, status, tracking),
``leaderboard`` (tables, report, calibration; never the driver) and ``commands`` (every
command of ``python -m mlbench``, assembled by ``cli``). ``layout`` and ``signals`` are
torch-free modules the suite loader and the command line import. ``api`` is the Python API,
beside ``cli``: :func:`run`, :func:`results`, :class:`MlbenchError` (see its docstring and
README "Python API"). This module imports nothing when imported; the API's names load
``mlbench.api`` on first use, so ``import mlbench`` stays light (docs/ARCHITECTURE.md has
the floors).
"""

__version__ = "0.1.0"

_API = ("run", "results", "MlbenchError", "Results", "RunResult")

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from mlbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlbench' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
