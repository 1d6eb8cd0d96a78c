"""The test-set side of the results store.

* each run's test image and patient ids (for the statistics, ``mlbench.stats``), stored once
  per distinct list of ids (tables ``test_sets`` and ``run_test_sets``);
* each run's scores on the named test sets of ``eval.test_sets`` beyond its own test split
  (``nih``: the tables ``metrics`` and ``predictions``): tables ``test_set_scores`` (scores,
  labels, the missing-label mask, the ids, what the output states about the test set) and
  ``test_set_metrics`` (the rows of ``metrics``, per test set). Written by the driver after
  training (``mlbench.driver.testsets``); cleared with a run's other results when it is
  claimed again.

``ResultsDB`` takes its methods from :class:`RunTestSetsMixin`; :class:`TestSetView` is a
results store seen through one named test set (what the leaderboard's statistics read).
"""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np

from mlbench.db.sqlite import finite, json_default, pack_array, unpack_array

TEST_SETS_SCHEMA = """
-- test image and patient ids (statistics: mlbench.stats), stored once per distinct test set
CREATE TABLE IF NOT EXISTS test_sets (
    key TEXT PRIMARY KEY,
    images BLOB NOT NULL,
    patients BLOB
);
CREATE TABLE IF NOT EXISTS run_test_sets (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    test_set TEXT NOT NULL REFERENCES test_sets(key)
);
-- a run scored on a named test set (eval.test_sets) other than its own test split
CREATE TABLE IF NOT EXISTS test_set_scores (
    run_id TEXT NOT NULL REFERENCES runs(id),
    test_set TEXT NOT NULL,
    findings TEXT NOT NULL,
    scores BLOB NOT NULL,
    targets BLOB NOT NULL,
    mask BLOB NOT NULL,
    ids TEXT NOT NULL REFERENCES test_sets(key),
    info TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, test_set)
);
CREATE TABLE IF NOT EXISTS test_set_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id),
    test_set TEXT NOT NULL,
    name TEXT NOT NULL,
    finding TEXT NOT NULL DEFAULT '',
    value REAL,
    lo REAL,
    hi REAL,
    PRIMARY KEY (run_id, test_set, name, finding)
);
"""
STRATA_SCHEMA = """
-- a run's stratum AUCs per test set (mlbench.stats.strata.stratum_table), written by the
-- driver after scoring (`key`: a fingerprint of the stored predictions and test ids)
CREATE TABLE IF NOT EXISTS strata (
    run_id TEXT NOT NULL REFERENCES runs(id),
    test_set TEXT NOT NULL,
    key TEXT NOT NULL,
    names TEXT NOT NULL,
    tab BLOB NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, test_set)
);
"""
# cleared when a run is claimed
SCORED_TABLES = ("test_set_scores", "test_set_metrics", "strata")
OWN = "nih"  # a run's own test split: tables metrics and predictions


class RunTestSetsMixin:
    """``ResultsDB``'s test-set ids (``self.conn``: its connection)."""

    conn: sqlite3.Connection

    def _store_test_ids(self, run_id: str, image_ids, patient_ids=None) -> None:
        key = self._ids_key(image_ids, patient_ids)
        self.conn.execute("INSERT OR REPLACE INTO run_test_sets (run_id, test_set) VALUES (?,?)",
                          (run_id, key))

    def _ids_key(self, image_ids, patient_ids=None) -> str:
        """Store a list of image (and patient) ids once; its key."""
        import hashlib

        images = np.asarray([str(x) for x in image_ids])
        patients = None if patient_ids is None else np.asarray(patient_ids)
        if patients is not None and patients.shape != images.shape:
            raise ValueError(f"Expected one patient id per image ({images.shape[0]}), "
                             f"got {patients.shape}")
        blob_i = pack_array(images)
        blob_p = None if patients is None else pack_array(patients)
        key = hashlib.sha256(blob_i + (blob_p or b"")).hexdigest()[:16]
        self.conn.execute("INSERT OR IGNORE INTO test_sets (key, images, patients) VALUES (?,?,?)",
                          (key, blob_i, blob_p))
        return key

    def test_ids(self, run_id: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(image ids, patient ids or None) of a run's test rows; None when not stored
        (a results.db from before they were: see ``mlbench.leaderboard``)."""
        try:
            row = self.conn.execute(
                "SELECT s.images, s.patients FROM run_test_sets r JOIN test_sets s"
                " ON s.key = r.test_set WHERE r.run_id=?", (run_id,)).fetchone()
        except sqlite3.OperationalError:  # an older database, opened read-only: no tables
            return None
        if row is None:
            return None
        patients = None if row["patients"] is None else unpack_array(row["patients"])
        return unpack_array(row["images"]), patients

    # ------------------------------------------------------------ named test sets
    def store_test_set(self, run_id: str, name: str, *, findings, records, scores, targets,
                       mask, image_ids, patient_ids, info: dict) -> None:
        """Store a finished run's results on the named test set ``name`` (one transaction;
        replaces an earlier scoring of the same pair).

        Args:
            findings: the test set's K findings (columns of ``scores``).
            records: ``(name, finding, value, lo, hi)`` rows, as ``ResultsDB.finish`` takes.
            scores, targets, mask: (N, K) scores (the label map applied), labels, and True
                where a label is known.
            image_ids, patient_ids: the N images and their patients.
            info: what the output states about the test set (source, label map, policy,
                notes), JSON-able.
        """
        scores = np.asarray(scores, np.float32)
        targets, mask = np.asarray(targets, np.uint8), np.asarray(mask, bool)
        if not scores.shape == targets.shape == mask.shape or scores.ndim != 2:
            raise ValueError(f"Expected scores, targets and mask of one (N, K) shape, got "
                             f"{scores.shape}, {targets.shape}, {mask.shape}")
        with self.transaction():
            row = self.conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None or row["status"] != "finished":
                raise RuntimeError(f"run {run_id} is not finished: nothing to score on {name}")
            key = self._ids_key(image_ids, patient_ids)
            self.conn.execute("DELETE FROM test_set_metrics WHERE run_id=? AND test_set=?",
                              (run_id, name))
            self.conn.executemany(
                "INSERT INTO test_set_metrics (run_id, test_set, name, finding, value, lo, hi)"
                " VALUES (?,?,?,?,?,?,?)",
                [(run_id, name, n, f, finite(v), finite(lo), finite(hi))
                 for n, f, v, lo, hi in records])
            self.conn.execute(
                "INSERT OR REPLACE INTO test_set_scores (run_id, test_set, findings, scores,"
                " targets, mask, ids, info, at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, name, json.dumps(list(findings)), pack_array(scores),
                 pack_array(targets), pack_array(mask), key,
                 json.dumps(info, default=json_default), time.time()))

    def scored_test_sets(self) -> dict[str, set[str]]:
        """{test set name: ids of the runs scored on it}, names in the order first scored
        (empty for a results.db from before named test sets)."""
        out: dict[str, set[str]] = {}
        try:
            rows = self.conn.execute(
                "SELECT test_set, run_id FROM test_set_scores ORDER BY at, rowid").fetchall()
        except sqlite3.OperationalError:  # an older database, opened read-only
            return out
        for r in rows:
            out.setdefault(r["test_set"], set()).add(r["run_id"])
        return out

    def test_set_result(self, run_id: str, name: str) -> dict | None:
        """A run's stored scoring on test set ``name``: findings, scores, targets, mask,
        images, patients, info; None when not scored."""
        try:
            row = self.conn.execute(
                "SELECT t.*, s.images, s.patients FROM test_set_scores t JOIN test_sets s"
                " ON s.key = t.ids WHERE t.run_id=? AND t.test_set=?", (run_id, name)).fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        return {"findings": json.loads(row["findings"]), "scores": unpack_array(row["scores"]),
                "targets": unpack_array(row["targets"]), "mask": unpack_array(row["mask"]),
                "images": unpack_array(row["images"]),
                "patients": None if row["patients"] is None else unpack_array(row["patients"]),
                "info": json.loads(row["info"])}

    def test_set_metrics(self, name: str, run_id: str | None = None) -> list[dict]:
        """Rows of ``test_set_metrics`` of test set ``name`` (as ``ResultsDB.metrics``)."""
        sql, args = "SELECT run_id, name, finding, value, lo, hi FROM test_set_metrics " \
                    "WHERE test_set=?", (name,)
        if run_id is not None:
            sql, args = sql + " AND run_id=?", (name, run_id)
        try:
            return [dict(r) for r in self.conn.execute(sql, args)]
        except sqlite3.OperationalError:
            return []

    def for_test_set(self, name: str) -> TestSetView:
        """This store seen through test set ``name`` (:class:`TestSetView`)."""
        return TestSetView(self, name)

    def prediction_mask(self, run_id: str) -> np.ndarray | None:
        """The missing-label mask of a run's stored predictions: None (its own test split
        has every label)."""
        return None

    # ------------------------------------------------------------ strata cache
    def prediction_digest(self, run_id: str, test_set: str = OWN) -> str | None:
        """SHA-256 of a run's stored scores, targets (and mask) on ``test_set`` and of the
        key of its test ids, from the stored bytes (nothing decompressed); None when not
        stored. What a stored stratum table is valid for."""
        import hashlib

        try:
            if test_set == OWN:
                row = self.conn.execute(
                    "SELECT p.scores, p.targets, r.test_set AS ids FROM predictions p LEFT JOIN"
                    " run_test_sets r ON r.run_id = p.run_id WHERE p.run_id=?",
                    (run_id,)).fetchone()
                parts = None if row is None else (row["scores"], row["targets"])
            else:
                row = self.conn.execute(
                    "SELECT scores, targets, mask, ids FROM test_set_scores WHERE run_id=? AND"
                    " test_set=?", (run_id, test_set)).fetchone()
                parts = None if row is None else (row["scores"], row["targets"], row["mask"])
        except sqlite3.OperationalError:  # an older database, opened read-only
            return None
        if row is None:
            return None
        h = hashlib.sha256()
        for blob in parts:
            h.update(len(blob).to_bytes(8, "little") + bytes(blob))
        h.update((row["ids"] or "").encode())
        return h.hexdigest()

    def store_strata(self, run_id: str, test_set: str, key: str, names: list[str],
                     table: np.ndarray, note: str = "") -> None:
        """Store a finished run's stratum table on ``test_set`` (``key``: what it is of,
        :func:`mlbench.stats.strata.table_key`); replaces an earlier one."""
        with self.transaction():
            row = self.conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None or row["status"] != "finished":
                return  # claimed again meanwhile: its new results get their own
            self.conn.execute(
                "INSERT OR REPLACE INTO strata (run_id, test_set, key, names, tab, note)"
                " VALUES (?,?,?,?,?,?)", (run_id, test_set, key, json.dumps(list(names)),
                                          pack_array(np.asarray(table, np.float64)), note))

    def stored_strata(self, run_id: str, test_set: str = OWN) -> dict | None:
        """A run's stored stratum table on ``test_set``: {"key", "names", "table", "note"};
        None when none is stored (or the database predates them)."""
        try:
            row = self.conn.execute("SELECT key, names, tab, note FROM strata WHERE run_id=?"
                                    " AND test_set=?", (run_id, test_set)).fetchone()
        except sqlite3.OperationalError:  # an older database, opened read-only: no table
            return None
        if row is None:
            return None
        return {"key": row["key"], "names": json.loads(row["names"]),
                "table": unpack_array(row["tab"]), "note": row["note"]}


class TestSetView:
    """A results store seen through one named test set: the runs scored on it, their
    metrics, scores, labels, mask and ids on it, and its findings; every other question
    goes to the store. What ``mlbench.leaderboard`` builds a test set's block from."""

    __test__ = False

    def __init__(self, db: RunTestSetsMixin, name: str):
        self.db, self.name = db, name
        self.scored = db.scored_test_sets().get(name, set())
        self._cache: dict[str, dict | None] = {}

    def __getattr__(self, attr):  # runs' rows, meta, epochs: the store's
        return getattr(self.db, attr)

    def _result(self, run_id: str) -> dict | None:
        if run_id not in self._cache:
            self._cache[run_id] = self.db.test_set_result(run_id, self.name)
        return self._cache[run_id]

    def runs(self, status: str | None = None) -> list[dict]:
        """The store's runs; a finished run not scored on this test set shows as not
        finished (pending), so that it is in no statistic."""
        out = []
        for r in self.db.runs(status if status != "finished" else None):
            if r["status"] == "finished" and r["id"] not in self.scored:
                r = {**r, "status": "pending"}
            if status is None or r["status"] == status:
                out.append(r)
        return out

    def metrics(self, run_id: str | None = None) -> list[dict]:
        rows = self.db.test_set_metrics(self.name, run_id)
        run_level = [m for m in self.db.metrics(run_id) if not m["finding"]
                     and m["name"] in ("val_mean_auc", "train_seconds", "train_images_per_s")]
        return rows + [m for m in run_level if m["run_id"] in self.scored]

    def predictions(self, run_id: str):
        r = self._result(run_id)
        return None if r is None else (r["scores"], r["targets"])

    def prediction_mask(self, run_id: str) -> np.ndarray | None:
        r = self._result(run_id)
        return None if r is None else r["mask"]

    def test_ids(self, run_id: str):
        r = self._result(run_id)
        return None if r is None else (r["images"], r["patients"])

    def prediction_digest(self, run_id: str) -> str | None:
        return self.db.prediction_digest(run_id, self.name)

    def stored_strata(self, run_id: str) -> dict | None:
        return self.db.stored_strata(run_id, self.name)

    def info(self) -> dict:
        """What the output states about this test set (from its first scored run)."""
        for rid in sorted(self.scored):
            r = self._result(rid)
            if r is not None:
                return r["info"]
        return {}

    def get_meta(self, key: str, default=None):
        if key == "findings":
            for rid in sorted(self.scored):
                r = self._result(rid)
                if r is not None:
                    return r["findings"]
            return default
        return self.db.get_meta(key, default)
