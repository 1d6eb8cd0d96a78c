"""The results store: atomic claims, status transitions, records round trip, stale runs."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from mlbench.db import ResultsDB, pack_array, unpack_array
from mlbench.suite import load_suite
from tests.helpers import EIGHT_RUNS, tiny_suite


@pytest.fixture
def suite(tmp_path):
    return load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS), train_keys=False, env={})


def test_add_runs_idempotent_and_config_stored(suite):
    with ResultsDB(suite.output) as db:
        assert db.add_runs(suite.runs) == 8
        assert db.add_runs(suite.runs) == 0
        row = db.get_run(suite.runs[0].id)
        assert row["config"] == suite.runs[0].config and row["status"] == "pending"
        assert db.counts() == {"pending": 8, "running": 0, "finished": 0, "failed": 0}
        assert (suite.output / "results.db").exists()
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_status_transitions_and_records(suite):
    scores = np.random.default_rng(0).random((10, 14)).astype(np.float32)
    targets = (scores > 0.5).astype(np.float32)
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs[:2])
        a = db.claim()
        db.log_epoch(a["id"], 0, {"epoch": 0, "train_loss": 0.5})
        db.finish(a["id"], [("mean_auc", "", 0.7, 0.6, 0.8), ("auc", "F0", float("nan"), None, None)],
                  scores, targets, epochs=[{"epoch": 0, "train_loss": 0.4}])
        b = db.claim()
        db.fail(b["id"], "non-finite training loss at step 7", 7)
        assert db.claim() is None
        assert [e["status"] for e in db.events(a["id"])] == ["pending", "running", "finished"]
        assert [e["status"] for e in db.events(b["id"])] == ["pending", "running", "failed"]
        assert db.get_run(b["id"])["failed_step"] == 7
        m = {(r["name"], r["finding"]): r for r in db.metrics(a["id"])}
        assert m[("mean_auc", "")]["value"] == 0.7 and m[("mean_auc", "")]["hi"] == 0.8
        assert m[("auc", "F0")]["value"] is None  # NaN stored as NULL
        s, t = db.predictions(a["id"])
        assert np.array_equal(s, scores) and np.array_equal(t, targets)
        assert db.epochs(a["id"]) == [{"epoch": 0, "train_loss": 0.4}]
        # results only go to a run this process holds
        with pytest.raises(RuntimeError, match="not held"):
            db.fail(a["id"], "late")


def test_finish_is_atomic(suite):
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs[:1])
        run = db.claim()
        with pytest.raises(ValueError):  # bad scores after the metrics: all rolled back
            db.finish(run["id"], [("mean_auc", "", 0.5, None, None)],
                      np.array([["x"] * 14]), np.zeros((1, 14)))
        assert db.get_run(run["id"])["status"] == "running"
        assert db.metrics(run["id"]) == [] and db.predictions(run["id"]) is None


def test_stale_running_runs_reset(suite):
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs[:3])
        run = db.claim()
        db.log_epoch(run["id"], 0, {"epoch": 0})
        assert db.reset_stale() == []  # held by this live process
        assert db.reset_stale(alive=lambda worker: False) == [run["id"]]
        assert db.get_run(run["id"])["status"] == "pending"
        again = db.claim([run["id"]])
        assert again["id"] == run["id"] and again["attempts"] == 2
        assert db.epochs(run["id"]) == []  # partial curves of the killed attempt cleared


def test_pack_roundtrip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = unpack_array(pack_array(a))
    assert b.dtype == a.dtype and np.array_equal(a, b)


def _claim_all(path, q):
    got = []
    with ResultsDB(path) as db:
        while (run := db.claim()) is not None:
            got.append(run["id"])
            db.finish(run["id"], [("mean_auc", "", 0.5, None, None)], np.zeros((2, 14)),
                      np.zeros((2, 14)))
    q.put(got)


def test_concurrent_workers_never_share_a_run(suite):
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(suite.output), q)) for _ in range(3)]
    for p in procs:
        p.start()
    claimed = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    flat = [i for got in claimed for i in got]
    assert sorted(flat) == sorted(r.id for r in suite.runs)  # each exactly once
    with ResultsDB(suite.output) as db:
        assert db.counts()["finished"] == 8
        assert all(sum(e["status"] == "running" for e in db.events(r.id)) == 1 for r in suite.runs)


def test_release_gives_a_run_back(suite):
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs[:1])
        run = db.claim()
        db.release(run["id"], "interrupted (Ctrl-C)")
        assert db.get_run(run["id"])["status"] == "pending"
        assert db.events(run["id"])[-1]["detail"] == "interrupted (Ctrl-C)"
        assert db.claim()["id"] == run["id"]


def test_an_older_results_db_opens_and_gains_the_new_columns(tmp_path, suite):
    # a results.db made before runs.device / runs.lease_until existed
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, suite TEXT NOT NULL, backbone TEXT NOT NULL,"
        " head TEXT NOT NULL, loss TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending', created REAL NOT NULL, started REAL,"
        " finished REAL, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,"
        " failed_step INTEGER);"
        "INSERT INTO runs (id, suite, backbone, head, loss, seed, config, status, created)"
        " VALUES ('old', 's', 'b', 'h', 'bce', 0, '{}', 'finished', 1.0);")
    conn.commit()
    conn.close()
    with ResultsDB(path) as db:
        assert db.get_run("old")["device"] is None and db.get_run("old")["status"] == "finished"
        db.add_runs(suite.runs[:1])
        run = db.claim()
        db.finish(run["id"], [("mean_auc", "", 0.5, None, None)], np.zeros((2, 14)),
                  np.zeros((2, 14)), device="NVIDIA H100")
        assert db.get_run(run["id"])["device"] == "NVIDIA H100"


def test_leases_decide_for_runs_held_on_other_hosts(suite):
    # _worker_alive trusted any foreign host:pid: a run held by a dead node stayed running
    import time

    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs[:3])
        ids = [db.claim(lease_s=60)["id"] for _ in range(3)]
        with db.transaction():
            db.conn.execute("UPDATE runs SET worker='node-7:123' WHERE id IN (?, ?)", ids[:2])
            db.conn.execute("UPDATE runs SET lease_until=? WHERE id=?", (time.time() - 1, ids[0]))
        assert db.reset_stale() == [ids[0]]  # expired lease; ids[1] still leased; ids[2] ours
        assert "lease of node-7:123 expired" in db.events(ids[0])[-1]["detail"]
        assert db.reset_stale(now=time.time() + 120) == [ids[1], ids[2]]  # nobody renewed
        db.claim([ids[2]], lease_s=60)
        assert db.renew_leases(600) == 1  # the heartbeat: only what this process holds
        assert db.reset_stale(now=time.time() + 120) == []
