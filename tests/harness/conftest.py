"""Shared helpers of the harness tests: tiny suites and a results DB filled by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.stats import metric_records
from mlbench.suite import load_suite

FINDINGS = [f"F{i}" for i in range(14)]


def tiny_suite(tmp_path, **changes) -> dict:
    """A suite mapping on CXR14-sim with tiny settings; ``changes`` replace top-level keys."""
    suite = {
        "name": "tiny",
        "dataset": {"sim": {"images": 160, "size": 32, "seed": 0}, "image_size": 32,
                    "val_fraction": 0.2},
        "grid": {"backbone": ["resnet10t"], "head": ["linear", "bilinear"],
                 "loss": ["bce", "bce+0.1*msml"]},
        "seeds": [0, 1],
        "model": {"head_kwargs": {}},
        "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3,
                  "max_steps_per_epoch": 2, "augment": False},
        "eval": {"bootstrap": 20, "reference": "bce"},
        "output": str(tmp_path / "out"),
    }
    suite.update(changes)
    return suite


def fake_predictions(rng: np.random.Generator, signal: float, n: int = 120):
    """(scores, targets) with both labels in every class; larger signal, higher AUC."""
    targets = (rng.random((n, 14)) < 0.3).astype(np.float32)
    targets[0], targets[1] = 1, 0
    scores = 1 / (1 + np.exp(-(signal * targets + rng.normal(size=targets.shape))))
    return scores.astype(np.float32), targets


def fill(db: ResultsDB, runs, signal_of, seed: int = 0, fail: set | None = None) -> None:
    """Claim and finish every run with fake predictions (same targets for every run)."""
    db.add_runs(runs)
    db.set_meta("findings", FINDINGS)
    base = np.random.default_rng(seed)
    _, targets = fake_predictions(base, 0.0)
    while (run := db.claim()) is not None:
        if fail and run["loss"] in fail:
            db.fail(run["id"], "non-finite training loss at step 3", 3)
            continue
        rng = np.random.default_rng([seed, run["seed"], len(run["loss"])])
        signal = signal_of(run["loss"])
        scores = 1 / (1 + np.exp(-(signal * targets + rng.normal(size=targets.shape))))
        recs = metric_records(targets, scores, FINDINGS, n_boot=20, seed=run["seed"])
        history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_mean_auc": 0.5 + 0.1 * e}
                   for e in range(3)]
        db.finish(run["id"], recs, scores, targets, epochs=history)


@pytest.fixture
def filled(tmp_path):
    """(output dir, suite) with every run finished on fake predictions."""
    suite = load_suite(tiny_suite(tmp_path, grid={
        "backbone": ["resnet10t"], "head": ["linear", "bilinear"],
        "loss": ["bce", "msml", "bce+0.1*msml"]}), train_keys=False)
    strength = {"bce": 1.0, "msml": 1.5, "bce+0.1*msml": 2.0}
    with ResultsDB(suite.output) as db:
        fill(db, suite.runs, strength.__getitem__)
        db.set_meta("reference", "bce")
        db.set_meta("dataset", {"kind": "sim", "root": "x", "image_size": 32})
    return suite.output, suite
