"""Console logging: one format for the driver and its workers (:func:`configure`).

The ``mlbench`` logger gets one handler (stderr, written through ``tqdm.write`` so progress
bars stay intact) with :data:`FORMAT`; ``--log-level`` sets its level, exported as
``$MLBENCH_LOG_LEVEL`` so that spawned workers inherit it. The bottom layer of
``mlbench.logs``: the run files' worker side configures itself through it.
"""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d]: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"
ENV_LEVEL = "MLBENCH_LOG_LEVEL"

_HANDLER_NAME = "mlbench-console"


# ------------------------------------------------------------------ console
class _TqdmHandler(logging.StreamHandler):
    """Writes records with ``tqdm.write`` (bars are redrawn below them), to ``target`` or
    else to the ``sys.stderr`` of the moment (not the one at configuration: tests and tools
    swap it)."""

    def __init__(self, target=None):
        super().__init__(target)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.target or sys.stderr)
        except Exception:  # never let logging break a run
            self.handleError(record)


class _EngineRows(logging.Filter):
    """Drops the engine's raw per-epoch JSON lines unless the handler is at DEBUG."""

    def __init__(self, handler: logging.Handler):
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "mlbench.engine" and record.levelno == logging.INFO:
            return self.handler.level <= logging.DEBUG
        return True


def parse_level(level: str | int | None) -> int:
    """``"info"`` / ``"INFO"`` / ``20`` -> 20; None -> ``$MLBENCH_LOG_LEVEL`` or INFO.

    Raises:
        ValueError: not one of :data:`LEVELS`.
    """
    if level is None:
        level = os.environ.get(ENV_LEVEL) or DEFAULT_LEVEL
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"--log-level must be one of {list(LEVELS)}, got {level!r}")
    return logging.getLevelName(name)


def configure(level: str | int | None = None, *, stream=None, export: bool = True) -> int:
    """Give the ``mlbench`` logger its console handler at ``level``; idempotent.

    Args:
        level: a :data:`LEVELS` name or number (None: ``$MLBENCH_LOG_LEVEL``, else INFO).
        stream: where lines go (default ``sys.stderr``).
        export: set ``$MLBENCH_LOG_LEVEL`` so processes started from here inherit it.

    Returns:
        the numeric level.
    """
    value = parse_level(level)
    logger = logging.getLogger("mlbench")
    for h in list(logger.handlers):
        if h.get_name() == _HANDLER_NAME:
            logger.removeHandler(h)
    handler = _TqdmHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    handler.setLevel(value)
    handler.addFilter(_EngineRows(handler))
    logger.addHandler(handler)
    logger.setLevel(value)
    logger.propagate = False
    if export:
        os.environ[ENV_LEVEL] = logging.getLevelName(value)
    return value


def current_level() -> str:
    """The level name workers should use: the configured ``mlbench`` logger's, else the
    environment's, else INFO."""
    if configured():
        return logging.getLevelName(logging.getLogger("mlbench").level)
    return os.environ.get(ENV_LEVEL) or DEFAULT_LEVEL



def configured() -> bool:
    """Whether :func:`configure` gave the ``mlbench`` logger its console handler."""
    return any(h.get_name() == _HANDLER_NAME for h in logging.getLogger("mlbench").handlers)
