"""Files written whole or not at all (no torch).

Every file mlbench writes for a user (reports, leaderboard ``--out`` files, checkpoints) goes
through :func:`atomic_path`: the content is written to ``NAME.tmp-<pid>`` beside the final
name, flushed to disk and renamed over it with ``os.replace``, so a kill or a full disk
mid-write leaves the previous complete file (or none), never a truncated one under the
final name. A process killed before the rename leaves its ``NAME.tmp-<pid>``;
:func:`remove_orphans` deletes those of processes that are gone (the next run does, and
the next write of a CLI output removes those beside it). A final name that is a symbolic
link is written through: its target gets the content, the link stays.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "disk_of", "is_no_space", "remove_orphans"]

_TMP = re.compile(r"^(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path, remove_dead: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; renamed over ``path`` when the
    block ends without error (after an fsync), removed when it raises. ``remove_dead``: then
    also remove the temporaries of ``path`` that processes of this host killed mid-write left
    (the CLI's outputs; not checkpoints, which workers on other hosts may be writing: the
    driver removes those by age, :func:`remove_orphans`)."""
    path = Path(path)
    if path.is_symlink():  # the link's target gets the content; the link stays
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if remove_dead:
        _remove_dead_siblings(path)


def _remove_dead_siblings(path: Path) -> None:
    """The ``NAME.tmp-<pid>`` of ``path`` left by processes killed mid-write (this host)."""
    try:
        siblings = list(path.parent.glob(f"{glob_escape(path.name)}.tmp-*"))
    except OSError:
        return
    for p in siblings:
        m = _TMP.match(p.name)
        if m is not None and m["name"] == path.name and not _pid_alive(int(m["pid"])):
            try:
                p.unlink()
            except OSError:
                pass


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8",
                 remove_dead: bool = False) -> Path:
    """Write ``data`` (text or bytes) to ``path`` whole or not at all; returns ``path``
    (``remove_dead``: as :func:`atomic_path`'s)."""
    path = Path(path)
    with atomic_path(path, remove_dead) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_orphans(folder: str | Path, recursive: bool = True,
                   min_age_s: float = 0.0) -> list[Path]:
    """Delete the ``NAME.tmp-<pid>`` files under ``folder`` whose process is gone (killed
    between writing and renaming); a live process's temporary is left alone. Returns the
    files removed. A pid means something on this host only: where other hosts write to
    ``folder`` too (Ray, Slurm workers), ``min_age_s`` spares the files modified lately
    (another host's write in progress)."""
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in (folder.rglob("*.tmp-*") if recursive else folder.glob("*.tmp-*")):
        m = _TMP.match(p.name)
        if m is None or not p.is_file() or _pid_alive(int(m["pid"])):
            continue
        try:
            if min_age_s and time.time() - p.stat().st_mtime < min_age_s:
                continue
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a full disk or quota."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "no space left on device" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_of(path: str | Path) -> str:
    """The mount point that holds ``path`` (its nearest existing folder), e.g. ``/scratch``."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    dev = p.stat().st_dev
    while p != p.parent and p.parent.stat().st_dev == dev:
        p = p.parent
    return str(p)
