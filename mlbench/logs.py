"""Logging: one console format for the driver and its workers.

Console: :func:`configure` gives the ``mlbench`` logger one handler (stderr, written through
``tqdm.write`` so progress bars stay intact) with :data:`FORMAT`; ``--log-level`` sets its
level. A worker process (local, Ray, Slurm) configures itself the same way from its task
(``task["log_level"]``, else ``$MLBENCH_LOG_LEVEL``, which :func:`configure` exports so that
spawned processes inherit it). The engine's raw per-epoch JSON (``mlbench.engine`` at INFO)
goes to the console only at DEBUG: at INFO a worker logs one short line per epoch instead,
and the full row goes to the run's file.

The run files (``OUT/logs/<run id>.jsonl``) are written and read by :mod:`mlbench.runlog`
(format, worker side, ``commands.json``) and :mod:`mlbench.driverlog` (driver side,
progress); their names are importable from here too.
"""

from __future__ import annotations

from mlbench.console import (
    DATEFMT,
    DEFAULT_LEVEL,
    ENV_LEVEL,
    FORMAT,
    LEVELS,
    configure,
    configured,
    current_level,
    parse_level,
)
from mlbench.driverlog import DriverLog, where
from mlbench.runlog import (
    EVENTS,
    LOG_DIR,
    add_listener,
    append,
    command_for,
    current_attempt,
    first_line,
    line,
    log_dir,
    read_commands,
    read_run_log,
    record_command,
    remove_listener,
    run_log_path,
    summarize,
    worker_run,
)

__all__ = [
    "DATEFMT", "DEFAULT_LEVEL", "ENV_LEVEL", "EVENTS", "FORMAT", "LEVELS", "LOG_DIR",
    "DriverLog", "add_listener", "append", "command_for", "configure", "configured",
    "current_attempt", "current_level", "first_line", "line", "log_dir", "parse_level",
    "read_commands", "read_run_log", "record_command", "remove_listener", "run_log_path",
    "summarize", "where", "worker_run",
]
