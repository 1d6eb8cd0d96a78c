"""Logs: what a run says while it runs, and where a suite stands.

``console`` (one console format for the driver and its workers, ``--log-level``,
``$MLBENCH_LOG_LEVEL``), ``runlog`` (the run files ``OUT/logs/<run id>.jsonl``: format,
worker side, ``commands.json``), ``driverlog`` (the driver's lines of those files and the
per-worker progress they show), ``status`` (``mlbench status``: runs by status, ETA, failed
runs with their retry command) and ``tracking`` (MLflow / TensorBoard sinks fed from the
results store). Imports the results store (``mlbench.db``) and nothing else of mlbench, no
torch at import: the command line reads ``LEVELS`` from here when it builds its parser.

A worker process (local, Ray, Slurm) configures its console from its task
(``task["log_level"]``, else ``$MLBENCH_LOG_LEVEL``, which :func:`configure` exports so that
spawned processes inherit it). The engine's raw per-epoch JSON (the ``mlbench.engine``
logger at INFO) goes to the console only at DEBUG: at INFO a worker logs one short line per
epoch instead, and the full row goes to the run's file.
"""

from mlbench.logs.console import (
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
from mlbench.logs.driverlog import DriverLog, where
from mlbench.logs.runlog import (
    EVENTS,
    LOG_DIR,
    add_listener,
    append,
    command_for,
    current_attempt,
    epochs_of,
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
from mlbench.logs.status import STATUS_FORMATS, collect, fmt_seconds, render, render_text
from mlbench.logs.tracking import Tracker, TrackingError, export, make_tracker

__all__ = [
    "DATEFMT", "DEFAULT_LEVEL", "ENV_LEVEL", "EVENTS", "FORMAT", "LEVELS", "LOG_DIR",
    "STATUS_FORMATS", "DriverLog", "Tracker", "TrackingError", "add_listener", "append",
    "collect", "command_for", "configure", "configured", "current_attempt", "current_level",
    "epochs_of", "export", "first_line", "fmt_seconds", "line", "log_dir", "parse_level",
    "read_commands", "read_run_log", "record_command", "remove_listener", "render",
    "render_text", "run_log_path", "summarize", "where", "worker_run", "make_tracker",
]
