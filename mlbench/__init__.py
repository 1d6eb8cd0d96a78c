"""mlbench: a benchmark harness for multi-label medical-imaging losses.

Packages by stage of a run: ``suite`` (YAML -> run configs; what to try and what was
chosen), ``driver`` (claim -> submit -> store, executors, the one-run worker) over ``data``,
``models`` and ``train`` (one model trained and evaluated), ``db`` (the results store),
``stats`` (metrics and comparisons), ``logs`` (console, run files, status, tracking),
``leaderboard`` (tables, report, calibration; never the driver) and ``commands`` (every
command of ``python -m mlbench``, assembled by ``cli``). ``layout`` and ``signals`` are
torch-free modules the suite loader and the command line import. This module imports
nothing (docs/ARCHITECTURE.md has the floors).
"""

__version__ = "0.1.0"
