"""The SQLite plumbing of the results store: arrays as blobs, values SQLite can store, the
read-only connection (leaderboard, report: a read-only copy or folder works) and the columns
an older ``results.db`` gains when opened for writing."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import numpy as np


def pack_array(a: np.ndarray) -> bytes:
    """An array as a zlib-compressed ``.npy`` blob (dtype and shape kept)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return zlib.compress(buf.getvalue(), 6)


def unpack_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def finite(x: Any) -> float | None:
    """A float for SQLite; NaN is stored as NULL (SQLite has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return None if x != x else x


def connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A query-only connection to an existing database file, checked first
    (:func:`check_results_db`).

    ``mode=ro`` first (it sees what running workers commit); where SQLite cannot open a WAL
    database that way because the folder is read-only (it needs the ``-shm`` file), the file
    is opened ``immutable`` (nothing can be writing to a read-only folder).
    """
    from urllib.request import pathname2url

    if not path.is_file():
        raise FileNotFoundError(f"no results database at {path}; run a suite first: "
                                "python -m mlbench run suites/quickstart.yaml")
    check_results_db(path)  # a damaged page anywhere is refused, not read around
    url = "file:" + pathname2url(str(path.resolve()))
    queries = ("?mode=ro", "?mode=ro&immutable=1")
    wal = path.with_name(path.name + "-wal")
    if not path.stat().st_mode & 0o222 and not (wal.exists() and wal.stat().st_size):
        # a file nobody may write (a read-only copy) does not change while it is read:
        # immutable, SQLite leaves no -shm / -wal file beside it
        queries = queries[1:]
    for query in queries:
        conn = sqlite3.connect(url + query, uri=True, timeout=timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        except sqlite3.OperationalError as exc:
            conn.close()
            error = exc
            continue
        if ("runs",) not in [tuple(t) for t in tables]:
            conn.close()
            raise sqlite3.DatabaseError(f"{path} is not an mlbench results database (no runs table)")
        return conn
    raise sqlite3.OperationalError(f"cannot read {path}: {error}")


def check_results_db(path: Path) -> None:
    """Refuse a damaged results database before anything writes to it: ``PRAGMA
    quick_check`` on a read-only connection; the file is left as it is, and no ``-wal`` /
    ``-shm`` file is made beside it when there is none (an ``immutable`` read; confirmed
    with an ordinary read-only one if a writer started meanwhile). A
    missing or empty file passes (it is created); so does one that cannot be opened
    read-only here (the writer reports that). (Without a ``-wal`` file no connection is
    open, so the immutable read sees the whole database.)

    Raises:
        sqlite3.DatabaseError: "... malformed ..." naming what SQLite found.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    key = str(path.resolve())
    if _CHECKED.get(key) == _stamp(path):  # checked in this process, unchanged since
        return
    wal = path.with_name(path.name + "-wal")
    logging.getLogger("mlbench.db").debug(f"PRAGMA quick_check of {path}")
    problem = _quick_check(path, "?mode=ro" if wal.exists() else "?mode=ro&immutable=1")
    if problem is not None and wal.exists():  # a writer started meanwhile: through it
        problem = _quick_check(path, "?mode=ro")
    if problem is not None:
        if "not a database" in problem:
            raise sqlite3.DatabaseError(problem)
        raise sqlite3.DatabaseError(f"database disk image is malformed ({problem[:200]})")
    _CHECKED[key] = _stamp(path)


# A results.db checked in this process, with the stamp of its files then: not read through
# again while unchanged (a `run` opens it up to five times), nor after this process's own
# writes to it (``trust_own_writes``), so one command checks it once.
_CHECKED: dict[str, tuple] = {}


def _stamp(path: Path) -> tuple:
    """What changes when the database or its -wal file is written, replaced or copied over:
    inode, size, modification time (and the database's change time: a copy that keeps the
    modification time changes it; a -wal file's changes whenever a reader opens it, and an
    empty one, which a reader makes, holds nothing)."""
    out = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
        except OSError:
            st = None
        if st is None or (p != path and st.st_size == 0):  # no -wal, or an empty one
            out.append(None)
            continue
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                    st.st_ctime_ns if p == path else None))
    return tuple(out)


def trust_own_writes(path: Path) -> None:
    """After this process wrote to a results.db it had checked (``ResultsDB`` closing a
    writable connection): its current state counts as checked."""
    key = str(Path(path).resolve())
    if key in _CHECKED:
        _CHECKED[key] = _stamp(Path(path))


def _quick_check(path: Path, query: str) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with ``path`` (None: ok or cannot tell)."""
    from urllib.request import pathname2url

    url = "file:" + pathname2url(str(path.resolve())) + query
    try:
        conn = sqlite3.connect(url, uri=True, timeout=60.0, isolation_level=None)
    except sqlite3.OperationalError:
        return None
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "unable to open" in str(exc):
            return None
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None if rows == ["ok"] else "quick_check: " + "; ".join(rows)


def run_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    return d


_COLUMNS = {"runs": {"device": "TEXT", "lease_until": "REAL"}}


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """``ALTER TABLE ... ADD COLUMN`` what a database made by an older mlbench lacks."""
    for table, cols in _COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in cols.items():
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
