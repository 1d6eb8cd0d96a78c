"""The leaderboard's statistics end to end on hand-made results.db files (issue 12)."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.leaderboard import leaderboard
from mlbench.leaderboard.analysis import build
from tests.helpers import FINDINGS as ALL_FINDINGS
from tests.helpers import plant

FINDINGS = ALL_FINDINGS[:4]


@dataclass
class Run:
    loss: str
    seed: int
    backbone: str = "net"
    head: str = "linear"

    @property
    def config(self) -> dict:
        return {"suite": "t", "backbone": self.backbone, "head": self.head, "loss": self.loss,
                "seed": self.seed, "dataset": {"root": "/nonexistent"}}

    @property
    def id(self) -> str:
        return f"{self.loss}-{self.seed}"


def _targets(rng, n, patients):
    t = (rng.random((n, len(FINDINGS))) < 0.3).astype(np.uint8)
    groups = np.sort(rng.integers(0, patients, n))
    return t, groups


def make_db(path, scores_of, *, n=3000, patients=600, seed=0, ids=True, extra=None):
    """results.db with runs {(loss, seed): scores (N, C)} finished on one test set."""
    rng = np.random.default_rng(seed)
    t, groups = _targets(rng, n, patients)
    runs = {k: Run(*k) for k in scores_of(t, rng, groups)}
    scores = scores_of(t, np.random.default_rng(seed + 1), groups)
    kw = dict(image_ids=[f"im{i}" for i in range(n)], patient_ids=groups) if ids else {}
    with ResultsDB(path) as db:
        db.add_runs(runs.values())
        db.set_meta("findings", FINDINGS)
        db.set_meta("reference", "bce")
        for k, run in runs.items():
            plant(db, run.id, t, scores[k], findings=FINDINGS, records=(extra or {}).get(k, []),
                  **kw)
    return t, groups


def _sig(t, rng, strength):
    return 1 / (1 + np.exp(-(strength * t + rng.normal(0, 1, t.shape))))


def test_sign_flip_across_seeds_is_not_significant(tmp_path):
    """Seed 0 favours msml, seed 1 favours bce, each far beyond test-set noise: the old
    largest-per-seed DeLong p was ~1e-42 here; the leaderboard must not call it significant."""
    def scores(t, rng, groups):
        return {("bce", 0): _sig(t, rng, 1.0), ("msml", 0): _sig(t, rng, 1.6),
                ("bce", 1): _sig(t, rng, 1.6), ("msml", 1): _sig(t, rng, 1.0)}

    make_db(tmp_path / "results.db", scores)
    with ResultsDB(tmp_path / "results.db", readonly=True) as db:
        df = build(db)
    row = df[df["loss"] == "msml"].iloc[0]
    assert row["p"] > 0.2 and not row["significant"]
    assert row["delta_lo"] < 0 < row["delta_hi"]
    text = leaderboard(tmp_path)
    assert "*" not in re.sub(r"\* = adjusted", "", text)


def test_ids_stored_once_and_used_for_clustering(tmp_path):
    def scores(t, rng, groups):
        # every run errs alike on all films of a patient (patients differ in difficulty)
        patient = np.random.default_rng(9).normal(0, 1.5, (groups.max() + 1, t.shape[1]))[groups]

        def one(strength):
            return 1 / (1 + np.exp(-(strength * t + patient + rng.normal(0, 0.3, t.shape))))

        return {(loss, s): one(2.0 + 0.1 * (loss == "msml"))
                for loss in ("bce", "msml") for s in (0, 1, 2)}

    _, groups = make_db(tmp_path / "a.db", scores, patients=150)
    make_db(tmp_path / "b.db", scores, patients=150, ids=False)
    with ResultsDB(tmp_path / "a.db", readonly=True) as db:
        images, patients = db.test_ids("msml-1")
        assert list(images[:2]) == ["im0", "im1"] and np.array_equal(patients, groups)
        assert db.conn.execute("SELECT COUNT(*) FROM test_sets").fetchone()[0] == 1
        clustered = build(db)
    with ResultsDB(tmp_path / "b.db", readonly=True) as db:
        assert db.test_ids("msml-1") is None
        image_level = build(db)
    wide = lambda df: float((df["ci_hi"] - df["ci_lo"]).iloc[0])
    assert wide(clustered) > 1.5 * wide(image_level)
    assert "no patient ids stored" in leaderboard(tmp_path / "b.db")


def test_older_results_db_without_id_tables_reads_and_says_so(tmp_path):
    def scores(t, rng, groups):
        return {(loss, 0): _sig(t, rng, 1.0) for loss in ("bce", "msml")}

    make_db(tmp_path / "results.db", scores, ids=False)
    conn = sqlite3.connect(tmp_path / "results.db")
    conn.executescript("DROP TABLE run_test_sets; DROP TABLE test_sets;")
    conn.close()
    text = leaderboard(tmp_path)  # read-only: no tables, no error
    assert "no patient ids stored" in text and "1 seed: no seed term" in text
    with ResultsDB(tmp_path) as db:  # opened for writing, it gains the tables
        assert db.test_ids("bce-0") is None
        assert db.conn.execute("SELECT COUNT(*) FROM test_sets").fetchone()[0] == 0


def test_incomplete_sparse_not_estimable_and_cost(tmp_path):
    def scores(t, rng, groups):
        return {("bce", 0): _sig(t, rng, 1.0), ("bce", 1): _sig(t, rng, 1.0),
                ("msml", 0): _sig(t, rng, 1.2), ("msml", 1): _sig(t, rng, 1.2),
                ("lsep", 0): _sig(t, rng, 1.1)}

    def targets_tweak(t):
        t[:, 2] = 0  # not estimable
        t[:, 3] = 0
        t[:4, 3] = 1  # sparse: 4 positive images

    rng = np.random.default_rng(0)
    extra = {("bce", 0): [("train_seconds", "", 10.0, None, None)],
             ("bce", 1): [("train_seconds", "", 12.0, None, None)],
             ("msml", 0): [("train_seconds", "", 15.0, None, None)],
             ("msml", 1): [("train_seconds", "", 24.0, None, None)]}
    orig = _targets

    def patched(rng_, n, patients):
        t, g = orig(rng_, n, patients)
        targets_tweak(t)
        return t, g

    globals()["_targets"] = patched
    try:
        make_db(tmp_path / "results.db", scores, extra=extra)
    finally:
        globals()["_targets"] = orig
    del rng
    with ResultsDB(tmp_path / "results.db", readonly=True) as db:
        df = build(db)
    by = df.set_index("loss")
    assert by.loc["lsep", "incomplete"] and not by.loc["msml", "incomplete"]
    assert by.loc["msml", "cost"] == pytest.approx((1.5 + 2.0) / 2)
    assert np.isnan(by.loc["lsep", "cost"])  # no train time recorded: "—"
    assert by.loc["msml", "left_out"] == "F2;F3"
    text = leaderboard(tmp_path)
    assert "1 incomplete" in text and "1.75×" in text and "—" in text
    assert "n/e" in text and re.search(r"\(0\.\d{3}\)", text)  # F3 shown, left out of the mean
    assert "Left out of the means: F2, F3" in text
    # p Holm over the comparisons with a test: lsep's one seed gets none (issue 30)
    assert "adjusted over the 1 comparison shown" in text
    assert np.isnan(by.loc["lsep", "p"]) and "(no CI: 1 seed)" in text


def test_no_class_passes_the_rule_keeps_the_stored_means(tmp_path):
    def scores(t, rng, groups):
        return {(loss, s): _sig(t, rng, 1.0) for loss in ("bce", "msml") for s in (0, 1)}

    make_db(tmp_path / "results.db", scores, n=60, patients=6)  # 6 patients: below the rule
    with ResultsDB(tmp_path / "results.db", readonly=True) as db:
        df = build(db)
    assert df["mean_auc"].notna().all() and df["p"].isna().all()
    assert "no class passes the sparse-class rule" in leaderboard(tmp_path)


def test_one_matched_seed_gets_no_test_and_no_mark(tmp_path):
    """A loss with one finished seed in a multi-seed table: Δ only (issue 30: its p came from
    the test-set term alone and rejected 13% of nulls)."""
    def scores(t, rng, groups):
        out = {(loss, s): _sig(t, rng, 1.0) for loss in ("bce", "msml") for s in (0, 1, 2)}
        out[("bpmll", 0)] = _sig(t, rng, 3.0)  # far better, one seed
        return out

    make_db(tmp_path / "results.db", scores)
    with ResultsDB(tmp_path / "results.db", readonly=True) as db:
        df = build(db)
    row = df.set_index("loss").loc["bpmll"]
    assert row["delta"] > 0.05 and np.isnan(row["p"]) and np.isnan(row["delta_lo"])
    assert not row["significant"] and row["matched"] == 1
    assert np.isnan(row["ci_lo"])  # its mean AUC has no seed term either
    assert df.attrs["comparisons"] == 1  # Holm over the comparisons with a test
    text = leaderboard(tmp_path)
    assert "(no CI: 1 seed)" in text and "1 seed matched with bce" in text


def test_unstable_loss_is_marked_and_keeps_its_own_seed_spread(tmp_path):
    """Six seeds; one loss's runs spread 8x as much as the others': marked †, footnoted, and
    every comparison uses its own seed variance (nothing pooled from the unstable one)."""
    seeds = range(6)
    shift = np.random.default_rng(7).normal(0, 1, (5, 6))

    def scores(t, rng, groups):
        out = {}
        for i, loss in enumerate(("bce", "msml", "lsep", "asl", "zlpr")):
            for s in seeds:
                sd = 0.4 if loss == "lsep" else 0.05
                out[(loss, s)] = _sig(t, rng, 1.5 + sd * shift[i, s])
        return out

    make_db(tmp_path / "results.db", scores, n=2000, patients=800)
    with ResultsDB(tmp_path / "results.db", readonly=True) as db:
        df = build(db)
    by = df.set_index("loss")
    assert by.loc["lsep", "unstable"] and not by.loc["msml", "unstable"]
    assert by.loc["lsep", "seed_term"].startswith("own")
    assert by.loc["msml", "seed_term"] == "own (5 df)"
    text = leaderboard(tmp_path)
    assert "†" in text and "lsep is unstable over seeds" in text
