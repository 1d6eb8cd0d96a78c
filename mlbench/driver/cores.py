"""CPU cores shared by the mlbench drivers of one machine: no oversubscription.

The rule: a run computes with ``train.threads`` torch threads (:func:`run_threads`, default
1, fixed so that a CPU run gives the same numbers whatever runs beside it), and a driver with
``W`` local workers needs ``W x train.threads`` cores. Within one driver the plan keeps that
within the cores of the machine; across drivers, each *claims* its cores from a machine-wide
pool before training: one lock file per core in ``core_dir()`` (``$MLBENCH_CORE_DIR``,
default ``/tmp/mlbench-cpu-pool``), held with ``flock`` by the driver that claimed it. A
driver takes the free cores it needs (fewer free: fewer workers; fewer than one run needs: it
waits and says so), and the kernel frees its claim when it exits, ``kill -9`` included.
``MLBENCH_CORE_DIR=off`` turns the pool off (every driver counts only the machine's cores).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ENV = "MLBENCH_CORE_DIR"


def run_threads(cfg: dict) -> int:
    """Torch intra-op threads of a run: its config's ``train.threads`` (default 1)."""
    return int(cfg.get("train", {}).get("threads") or 1)


def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def core_dir() -> Path | None:
    """The pool's folder (None: pool turned off with ``MLBENCH_CORE_DIR=off``)."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in ("", "off", "none", "0"):
        return None
    return Path(value) if value else Path(tempfile.gettempdir()) / "mlbench-cpu-pool"


class CoreClaim:
    """Cores claimed by this process; ``release()`` (or the end of the process) frees them."""

    def __init__(self, cores: int, fds: list[int], pooled: bool):
        self.cores, self._fds, self.pooled = cores, fds, pooled

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the file drops its flock
        self._fds = []

    def __enter__(self) -> CoreClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _open_pool(folder: Path, n: int) -> list[Path] | None:
    """The pool's lock files for ``n`` cores (created world-writable, so every user of the
    machine shares one pool); None when the folder cannot be used."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.stat().st_uid == os.geteuid():
            folder.chmod(0o1777)
    except OSError:
        return None
    return [folder / f"core-{i}.lock" for i in range(n)]


_DENIED = -1  # a lock file this user may not open: the pool is not usable here


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s lock, None when another process holds it, ``_DENIED`` when
    it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return _DENIED
    try:
        os.fchmod(fd, 0o666)  # every user of the machine shares the pool (umask aside)
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    try:  # who holds it, for the message of a driver that waits
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass
    return fd


def holders(folder: Path | None = None) -> list[int]:
    """Pids of the processes holding cores of the pool (for messages)."""
    folder = folder or core_dir()
    pids = set()
    if folder is None or not folder.is_dir():
        return []
    for path in folder.glob("core-*.lock"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: its pid is in the file
            text = path.read_text(errors="replace").strip()
            if text.isdigit():
                pids.add(int(text))
        finally:
            os.close(fd)
    return sorted(pids)


def claim_cores(want: int, *, least: int = 1, cores: int | None = None,
                on_wait: Callable[[str], None] | None = None, poll_s: float = 0.5,
                timeout_s: float | None = None) -> CoreClaim:
    """Claim up to ``want`` cores of this machine, at least ``least`` (waits for them).

    Args:
        want: cores wanted (workers x threads); capped at the machine's cores.
        least: cores without which nothing can run (one run's threads); waits until that
            many are free.
        cores: the machine's cores (default ``cpu_cores()``).
        on_wait: called once with a one-line note when the driver has to wait.
        poll_s: seconds between attempts while waiting.
        timeout_s: give up waiting after this long (``TimeoutError``); None: wait.

    Returns:
        the claim; ``claim.cores`` may be less than ``want`` (never less than ``least``).
    """
    n = cores or cpu_cores()
    want, least = max(1, min(want, n)), max(1, min(least, n))
    folder = core_dir()
    paths = _open_pool(folder, n) if folder is not None else None
    if paths is None:  # no pool: the machine's cores alone bound the claim
        return CoreClaim(want, [], pooled=False)
    start, told = time.monotonic(), False
    while True:
        fds: list[int] = []
        for path in paths:
            if len(fds) == want:
                break
            fd = _try_lock(path)
            if fd == _DENIED:  # not ours to use: count the machine's cores alone
                for held in fds:
                    os.close(held)
                return CoreClaim(want, [], pooled=False)
            if fd is not None:
                fds.append(fd)
        if len(fds) >= least:
            return CoreClaim(len(fds), fds, pooled=True)
        for fd in fds:
            os.close(fd)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {least} free CPU core(s) within {timeout_s:.0f} s")
        if not told and on_wait is not None:
            pids = holders(folder)
            who = f" (pids {', '.join(map(str, pids))})" if pids else ""
            on_wait(f"waiting for a free CPU core: other mlbench drivers{who} hold "
                    f"{n - len(fds)} of the {n} cores of this machine ({folder}); "
                    f"{ENV}=off ignores them")
            told = True
        time.sleep(poll_s)
