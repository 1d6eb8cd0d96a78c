"""SIGTERM stops mlbench as Ctrl-C does: exit code 143 (128 + 15), runs given back, one line.

A batch system or ``kill`` ends a process with SIGTERM; Python's default is to die at once,
silently. ``sigterm_as_exit`` makes it raise ``SystemExit(143)`` in the main thread instead,
so ``finally`` blocks and the driver's clean-up (runs back to pending) run, and the CLI says
what happened. Processes forked from it (multiprocessing pool, DataLoader workers) inherit
the handler; there SIGTERM keeps its default and ends them at once.
"""

from __future__ import annotations

import os
import signal
import threading

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


def sigterm_as_exit():
    """Make SIGTERM raise ``SystemExit(143)``; returns the previous handler, to put back with
    ``signal.signal(signal.SIGTERM, previous)`` (None where no handler can be installed:
    not the main thread)."""

    owner = os.getpid()

    def on_term(signum, frame):
        if os.getpid() != owner:  # a forked child (a pool or DataLoader worker): die at once,
            signal.signal(signum, signal.SIG_DFL)  # as before, no clean-up that could block
            os.kill(os.getpid(), signum)  # on a lock another thread held at the fork
            return
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:
        return None
