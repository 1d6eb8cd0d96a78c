"""SIGTERM stops mlbench as Ctrl-C does: exit code 143 (128 + 15), runs given back, one line.

A batch system or ``kill`` ends a process with SIGTERM; Python's default is to die at once,
silently. ``sigterm_as_exit`` makes it raise ``SystemExit(143)`` in the main thread instead,
so ``finally`` blocks and the driver's clean-up (runs back to pending) run, and the CLI says
what happened.
"""

from __future__ import annotations

import signal
import threading

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


def sigterm_as_exit():
    """Make SIGTERM raise ``SystemExit(143)``; returns the previous handler, to put back with
    ``signal.signal(signal.SIGTERM, previous)`` (None where no handler can be installed:
    not the main thread)."""

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:
        return None
