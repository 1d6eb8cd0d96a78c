"""Folder locks: one process at a time writes a dataset folder or a prepared-cache folder.

An exclusive ``flock`` on the folder itself (no lock file is left behind, and the kernel
releases it when the holder dies, ``kill -9`` included): a second process waits, then finds
the work done (CXR14-sim generated, cache built) and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path


@contextlib.contextmanager
def folder_lock(root: str | os.PathLike, on_wait: Callable[[], None] | None = None):
    """Hold an exclusive lock on the folder ``root`` (which must exist) for the block.

    Args:
        root: the folder.
        on_wait: called once when another process holds the lock (before waiting for it),
            e.g. to tell the user why nothing happens.
    """
    fd = os.open(Path(root), os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
