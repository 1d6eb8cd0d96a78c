"""Who this process is: the ``host:pid`` worker name that holds a run, and whether such a
holder is still alive. Torch-free (the results store, the one-run worker and the run files
use it)."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    """``host:pid`` of this process (who holds a running run)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def same_host(worker: str | None) -> bool:
    return bool(worker) and worker.rpartition(":")[0] == socket.gethostname()


def worker_alive(worker: str | None) -> bool:
    """Whether ``host:pid`` is a live process. Workers on other hosts count as alive (their
    pid means nothing here): ``reset_stale`` judges those by their lease."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True
