"""The results store: one SQLite file (``results.db``) in the output folder.

Tables:
    runs           one row per run: id, suite, grid axes, resolved config (JSON), status,
                   timestamps, worker, attempts, error, failed_step, device (where it
                   trained), lease_until (the holder's lease, renewed by its heartbeat)
    status_events  every status transition (run_id, status, at, worker, detail)
    metrics        (run_id, name, finding, value, lo, hi): per-class auc/ap, mean_auc, map;
                   run-level val_mean_auc, train_seconds, train_images_per_s
    epochs         (run_id, epoch, data JSON): the engine's per-epoch history
    predictions    (run_id, scores, targets): test-set scores as compressed .npy blobs
    test_set_scores, test_set_metrics   a run's scores and metrics on each named test set
                   beyond its own test split (``eval.test_sets``; ``testsets``)
    strata         (run_id, test_set, key, names, tab, note): a run's stratum table, valid
                   for the predictions and test ids its ``key`` fingerprints (``testsets``)
    meta           key -> value (dataset description, ...)

Status: pending -> running -> finished | failed. Claiming a run and finishing it are single
``BEGIN IMMEDIATE`` transactions, so concurrent worker processes never claim the same run
and a killed process leaves either all of a run's results or none. WAL mode lets readers
(leaderboard) work while workers write.

Holding a run: a claim takes a lease (``lease_until``) that the holder renews with
``renew_leases`` (the driver's heartbeat). ``reset_stale`` puts a run back to pending when
its lease has run out, or, on this host, when its holder process is gone; a holder on
another host is judged by its lease alone (its pid means nothing here). Older databases
gain the ``device`` and ``lease_until`` columns when opened for writing.

Beside it in ``mlbench.db``: ``sqlite`` (blobs, the read-only connection, older columns),
``testsets`` (the test-set ids), ``host`` (``worker_name``: who holds a run).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlbench.db.host import same_host, worker_alive, worker_name
from mlbench.db.sqlite import (
    add_missing_columns,
    connect_readonly,
    finite,
    json_default,
    pack_array,
    run_dict,
    trust_own_writes,
    unpack_array,
)
from mlbench.db.testsets import SCORED_TABLES, STRATA_SCHEMA, TEST_SETS_SCHEMA, RunTestSetsMixin

__all__ = ["DB_NAME", "LEASE_S", "STATUSES", "ResultsDB"]

DB_NAME = "results.db"
STATUSES = ("pending", "running", "finished", "failed")
LEASE_S = 300.0  # default lease of a claimed run; the driver renews it every LEASE_S / 10
LOCK_NOTICE_S = 5.0  # a write lock waited for this long is said once
log = logging.getLogger("mlbench.db")


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    backbone TEXT NOT NULL,
    head TEXT NOT NULL,
    loss TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    failed_step INTEGER,
    device TEXT,
    lease_until REAL
);
CREATE TABLE IF NOT EXISTS status_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    status TEXT NOT NULL,
    at REAL NOT NULL,
    worker TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    finding TEXT NOT NULL DEFAULT '',
    value REAL,
    lo REAL,
    hi REAL,
    PRIMARY KEY (run_id, name, finding)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    scores BLOB NOT NULL,
    targets BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""" + TEST_SETS_SCHEMA + STRATA_SCHEMA


class ResultsDB(RunTestSetsMixin):
    """Results of one output folder. Open one per process; connections are not shared.

    Args:
        path: the output folder or the ``.db`` file itself.
        timeout: seconds to wait on a locked database before failing.
        readonly: open an existing database for queries only (leaderboard, report): nothing
            is created or written, so a read-only copy or folder works. A missing database
            raises ``FileNotFoundError`` naming its path.
    """

    def __init__(self, path: str | Path, timeout: float = 60.0, readonly: bool = False):
        path = Path(path)
        if path.suffix != ".db":
            if not readonly:
                path.mkdir(parents=True, exist_ok=True)
            path = path / DB_NAME
        self.path, self.timeout, self.readonly = path, timeout, readonly
        if readonly:
            self.conn = connect_readonly(path, timeout)
            self.conn.row_factory = sqlite3.Row
            return
        self.conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        try:
            self.conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            raise self._locked(exc) from None
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        with self.transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            add_missing_columns(self.conn)

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): takes the write lock up
        front. A lock held longer than ``LOCK_NOTICE_S`` is said once (a warning); one held
        past ``timeout`` raises an ``OperationalError`` that names the cause and the fix."""
        self._begin()
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin(self) -> None:
        wait = min(LOCK_NOTICE_S, self.timeout)
        self.conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or wait >= self.timeout:
                raise self._locked(exc) from None
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        log.warning(f"waiting for the write lock on {self.path}: another process holds it "
                    f"(up to {self.timeout:.0f} s)")
        self.conn.execute(f"PRAGMA busy_timeout = {int((self.timeout - wait) * 1000)}")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._locked(exc) from None
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def _locked(self, exc: sqlite3.OperationalError) -> sqlite3.OperationalError:
        """A lock error as one line with its cause and fix (others unchanged)."""
        if not _is_locked(exc):
            return exc
        return sqlite3.OperationalError(
            f"{self.path} is locked: another program has held its write lock for "
            f"{self.timeout:.0f} s (an open sqlite3 shell or DB browser with a transaction, a "
            f"backup tool, a stuck process: `fuser {self.path}` lists them); close it and run "
            "the same command again")

    def close(self) -> None:
        self.conn.close()
        if not self.readonly:
            trust_own_writes(self.path)  # checked once per command (check_results_db)

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def event(self, run_id: str, status: str, detail: str | None = None) -> None:
        """Record a status event that is not a transition (e.g. ``resumed``)."""
        with self.transaction():
            self._event(run_id, status, detail)

    def _event(self, run_id: str, status: str, detail: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO status_events (run_id, status, at, worker, detail) VALUES (?,?,?,?,?)",
            (run_id, status, time.time(), worker_name(), detail),
        )

    # ------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (key, json.dumps(value, default=json_default)),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # ------------------------------------------------------------ runs
    def add_runs(self, runs: Iterable) -> int:
        """Register runs (objects with ``id``, ``config``) as pending; known ids are kept.

        Returns:
            how many runs were new.
        """
        added = 0
        now = time.time()
        with self.transaction():
            for run in runs:
                cfg = run.config
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO runs (id, suite, backbone, head, loss, seed, config,"
                    " status, created) VALUES (?,?,?,?,?,?,?,'pending',?)",
                    (run.id, cfg["suite"], run.backbone, run.head, run.loss, run.seed,
                     json.dumps(cfg, sort_keys=True, default=json_default), now),
                )
                if cur.rowcount:
                    added += 1
                    self._event(run.id, "pending")
        return added

    def reset_stale(self, alive: callable | None = None, now: float | None = None) -> list[str]:
        """Put back to pending the runs left ``running`` by holders that are gone.

        A run is stale when its lease has run out (``lease_until`` < now; a row without a
        lease counts ``LEASE_S`` from its start), or when its holder ran on this host and
        that pid no longer exists. With ``alive``, ``alive(worker)`` alone decides.

        Returns:
            ids of the runs reset.
        """
        now = time.time() if now is None else now
        reset = []
        with self.transaction():
            rows = self.conn.execute(
                "SELECT id, worker, started, lease_until FROM runs WHERE status = 'running'"
            ).fetchall()
            for row in rows:
                if alive is not None:
                    if alive(row["worker"]):
                        continue
                    why = f"interrupted (worker {row['worker']} gone)"
                else:
                    lease = row["lease_until"]
                    if lease is None:
                        lease = (row["started"] or 0.0) + LEASE_S
                    if lease < now:
                        why = f"interrupted (lease of {row['worker']} expired)"
                    elif same_host(row["worker"]) and not worker_alive(row["worker"]):
                        why = f"interrupted (worker {row['worker']} gone)"
                    else:
                        continue
                self.conn.execute(
                    "UPDATE runs SET status='pending', worker=NULL, lease_until=NULL"
                    " WHERE id=? AND status='running'", (row["id"],))
                self._event(row["id"], "pending", why)
                reset.append(row["id"])
        return reset

    def renew_leases(self, lease_s: float = LEASE_S, ids: Iterable[str] | None = None) -> int:
        """Extend the leases of the runs this process holds (all, or those in ``ids``) to
        ``now + lease_s``: the heartbeat. Returns how many runs were renewed."""
        until = time.time() + lease_s
        with self.transaction():
            if ids is None:
                cur = self.conn.execute(
                    "UPDATE runs SET lease_until=? WHERE status='running' AND worker=?",
                    (until, worker_name()))
                return cur.rowcount
            n = 0
            for rid in ids:
                n += self.conn.execute(
                    "UPDATE runs SET lease_until=? WHERE id=? AND status='running' AND worker=?",
                    (until, rid, worker_name())).rowcount
            return n

    def retry_failed(self, ids: Iterable[str] | None = None) -> int:
        """Put failed runs (all, or those in ``ids``) back to pending."""
        n = 0
        with self.transaction():
            rows = self.conn.execute("SELECT id FROM runs WHERE status='failed'").fetchall()
            wanted = None if ids is None else set(ids)
            for row in rows:
                if wanted is not None and row["id"] not in wanted:
                    continue
                self.conn.execute("UPDATE runs SET status='pending' WHERE id=?", (row["id"],))
                self._event(row["id"], "pending", "retry")
                n += 1
        return n

    def claim(self, ids: Iterable[str] | None = None, lease_s: float = LEASE_S) -> dict | None:
        """Atomically take the next pending run (optionally among ``ids``) for this process,
        with a lease of ``lease_s`` seconds (renew it with ``renew_leases``).

        Partial results of an earlier attempt (epoch curves) are cleared in the same
        transaction.

        Returns:
            the run row as a dict (``config`` parsed), or None when nothing is pending.
        """
        wanted = None if ids is None else list(ids)
        with self.transaction():
            if wanted is None:
                row = self.conn.execute(
                    "SELECT * FROM runs WHERE status='pending' ORDER BY created, rowid LIMIT 1"
                ).fetchone()
            else:
                row = None
                for rid in wanted:
                    row = self.conn.execute(
                        "SELECT * FROM runs WHERE id=? AND status='pending'", (rid,)
                    ).fetchone()
                    if row:
                        break
            if row is None:
                return None
            now = time.time()
            self.conn.execute(
                "UPDATE runs SET status='running', started=?, worker=?, attempts=attempts+1,"
                " error=NULL, failed_step=NULL, lease_until=? WHERE id=?",
                (now, worker_name(), now + lease_s, row["id"]),
            )
            for table in ("epochs", "metrics", "predictions", *SCORED_TABLES):
                self.conn.execute(f"DELETE FROM {table} WHERE run_id=?", (row["id"],))
            self._event(row["id"], "running")
        return self.get_run(row["id"])

    def log_epoch(self, run_id: str, epoch: int, data: dict) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO epochs (run_id, epoch, data) VALUES (?,?,?)",
                (run_id, int(epoch), json.dumps(data, default=json_default)),
            )

    def finish(
        self,
        run_id: str,
        metrics: Iterable[tuple[str, str, float, float | None, float | None]],
        scores: np.ndarray,
        targets: np.ndarray,
        epochs: list[dict] | None = None,
        device: str | None = None,
        image_ids=None,
        patient_ids=None,
    ) -> None:
        """Store a run's results and mark it finished, all in one transaction.

        Args:
            metrics: ``(name, finding, value, lo, hi)``; finding ``""`` for run-level values.
            scores: (N, C) test-set probabilities.
            targets: (N, C) test-set labels.
            epochs: the training history (replaces what ``log_epoch`` wrote).
            image_ids, patient_ids: the N test images (rows of ``scores``) and their patients,
                for the statistics (stored once per distinct test set).
            device: where the run trained (``runs.device``).
        """
        with self.transaction():
            self._require_running(run_id)
            self.conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, name, finding, value, lo, hi)"
                " VALUES (?,?,?,?,?,?)",
                [(run_id, n, f, finite(v), finite(lo), finite(hi)) for n, f, v, lo, hi in metrics],
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO predictions (run_id, scores, targets) VALUES (?,?,?)",
                (run_id, pack_array(np.asarray(scores, np.float32)),
                 pack_array(np.asarray(targets, np.uint8))),
            )
            if image_ids is not None:
                self._store_test_ids(run_id, image_ids, patient_ids)
            if epochs is not None:
                self.conn.execute("DELETE FROM epochs WHERE run_id=?", (run_id,))
                self.conn.executemany(
                    "INSERT INTO epochs (run_id, epoch, data) VALUES (?,?,?)",
                    [(run_id, int(e.get("epoch", i)), json.dumps(e, default=json_default))
                     for i, e in enumerate(epochs)],
                )
            self.conn.execute(
                "UPDATE runs SET status='finished', finished=?, lease_until=NULL,"
                " device=COALESCE(?, device) WHERE id=?", (time.time(), device, run_id)
            )
            self._event(run_id, "finished")

    def fail(self, run_id: str, error: str, failed_step: int | None = None,
             device: str | None = None) -> None:
        """Mark a run failed with its error (and the training step, when known)."""
        with self.transaction():
            self._require_running(run_id)
            self.conn.execute(
                "UPDATE runs SET status='failed', finished=?, error=?, failed_step=?,"
                " lease_until=NULL, device=COALESCE(?, device) WHERE id=?",
                (time.time(), error, failed_step, device, run_id),
            )
            self._event(run_id, "failed", error[:500])

    def release(self, run_id: str, detail: str) -> None:
        """Give a run this process holds back to pending (its partial curves stay until reclaimed)."""
        with self.transaction():
            self._require_running(run_id)
            self.conn.execute(
                "UPDATE runs SET status='pending', worker=NULL, lease_until=NULL WHERE id=?",
                (run_id,))
            self._event(run_id, "pending", detail)

    def _require_running(self, run_id: str) -> None:
        row = self.conn.execute("SELECT status, worker FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or row["status"] != "running" or row["worker"] != worker_name():
            raise RuntimeError(f"run {run_id} is not held by this process ({dict(row) if row else None})")

    # ------------------------------------------------------------ queries
    def get_run(self, run_id: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return run_dict(row) if row else None

    def runs(self, status: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM runs", ()
        if status is not None:
            sql, args = sql + " WHERE status=?", (status,)
        return [run_dict(r) for r in self.conn.execute(sql + " ORDER BY created, rowid", args)]

    def counts(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        """Number of runs per status (among ``ids`` when given)."""
        out = dict.fromkeys(STATUSES, 0)
        wanted = None if ids is None else set(ids)
        for row in self.conn.execute("SELECT id, status FROM runs"):
            if wanted is None or row["id"] in wanted:
                out[row["status"]] += 1
        return out

    def metrics(self, run_id: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM metrics", ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id=?", (run_id,)
        return [dict(r) for r in self.conn.execute(sql, args)]

    def epochs(self, run_id: str) -> list[dict]:
        rows = self.conn.execute(
            "SELECT data FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,)
        ).fetchall()
        return [json.loads(r["data"]) for r in rows]

    def predictions(self, run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.conn.execute(
            "SELECT scores, targets FROM predictions WHERE run_id=?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        return unpack_array(row["scores"]), unpack_array(row["targets"])

    def events(self, run_id: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM status_events", ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id=?", (run_id,)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY id", args)]
