"""A run's results per named test set: stored once per (run, test set), read back through
``TestSetView`` as the leaderboard reads the run's own split, cleared when the run is
claimed again; an older results.db without the tables reads as having none."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.suite import load_suite
from tests.helpers import plant, tiny_suite


@pytest.fixture
def db(tmp_path):
    suite = load_suite(tiny_suite(None, tmp_path / "out"), train_keys=False,
                       env={})
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
        rng = np.random.default_rng(0)
        targets = (rng.random((20, 14)) < 0.3).astype(np.float32)
        for run in suite.runs:
            plant(db, run.id, targets, rng.random((20, 14)).astype(np.float32),
                  image_ids=[f"{i:08d}_000.png" for i in range(20)], patient_ids=list(range(20)))
        yield db


def _store(db, rid, mask=None, value=0.7):
    k = 3
    mask = np.ones((6, k), bool) if mask is None else mask
    db.store_test_set(rid, "nih-expert", findings=["A", "B", "C"],
                      records=[("mean_auc", "", value, 0.6, 0.8), ("auc", "A", value, None, None)],
                      scores=np.full((6, k), 0.5), targets=np.eye(6, k), mask=mask,
                      image_ids=[f"{i:08d}_000.png" for i in range(6)],
                      patient_ids=[0, 0, 1, 2, 3, 4], info={"name": "nih-expert", "images": 6})


def test_round_trip_and_view(db):
    a, b = (r["id"] for r in db.runs())
    mask = np.ones((6, 3), bool)
    mask[0, 1] = False
    _store(db, a, mask)
    assert db.scored_test_sets() == {"nih-expert": {a}}
    got = db.test_set_result(a, "nih-expert")
    assert got["findings"] == ["A", "B", "C"] and got["scores"].shape == (6, 3)
    np.testing.assert_array_equal(got["mask"], mask)
    assert list(got["patients"]) == [0, 0, 1, 2, 3, 4] and got["info"]["images"] == 6
    view = db.for_test_set("nih-expert")
    assert {r["id"]: r["status"] for r in view.runs()} == {a: "finished", b: "pending"}
    assert [r["id"] for r in view.runs("finished")] == [a]
    assert view.get_meta("findings") == ["A", "B", "C"]
    assert {(m["name"], m["finding"]) for m in view.metrics(a)} >= {("mean_auc", ""),
                                                                   ("auc", "A")}
    np.testing.assert_array_equal(view.prediction_mask(a), mask)
    assert view.predictions(b) is None and db.prediction_mask(a) is None
    _store(db, a, value=0.9)  # scored again: replaced, not added
    rows = db.test_set_metrics("nih-expert", a)
    assert len(rows) == 2 and {m["value"] for m in rows} == {0.9}


def test_claim_clears_and_unfinished_refused(db):
    a, b = (r["id"] for r in db.runs())
    _store(db, a)
    with db.transaction():
        db.conn.execute("UPDATE runs SET status='pending' WHERE id=?", (a,))
    assert db.claim([a])["id"] == a
    assert db.scored_test_sets() == {} and db.test_set_metrics("nih-expert") == []
    with pytest.raises(RuntimeError, match="not finished"):
        _store(db, a)
    with pytest.raises(ValueError, match="one \\(N, K\\) shape"):
        _store(db, b, mask=np.ones((5, 3), bool))


def test_older_results_db_has_none(db, tmp_path):
    path = db.path
    db.conn.executescript("DROP TABLE test_set_scores; DROP TABLE test_set_metrics;")
    with ResultsDB(path, readonly=True) as old:
        assert old.scored_test_sets() == {} and old.test_set_metrics("x") == []
        assert old.test_set_result(old.runs()[0]["id"], "x") is None
    with pytest.raises(sqlite3.OperationalError):
        db.conn.execute("SELECT * FROM test_set_scores")
