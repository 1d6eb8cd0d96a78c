"""The test-set ids of the results store: each run's test image and patient ids (for the
statistics, ``mlbench.stats``), stored once per distinct test set (tables ``test_sets`` and
``run_test_sets``). ``ResultsDB`` takes its methods from :class:`RunTestSetsMixin`."""

from __future__ import annotations

import sqlite3

import numpy as np

from mlbench.db.sqlite import pack_array, unpack_array

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
"""


class RunTestSetsMixin:
    """``ResultsDB``'s test-set ids (``self.conn``: its connection)."""

    conn: sqlite3.Connection

    def _store_test_ids(self, run_id: str, image_ids, patient_ids=None) -> None:
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
        self.conn.execute("INSERT OR REPLACE INTO run_test_sets (run_id, test_set) VALUES (?,?)",
                          (run_id, key))

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
