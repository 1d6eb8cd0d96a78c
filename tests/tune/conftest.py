"""Helpers of the tuning tests: tiny tuned suites and results.db files planted by hand."""

from __future__ import annotations

import numpy as np

from mlbench.db import ResultsDB
from mlbench.stats import metric_records

FINDINGS = [f"F{i}" for i in range(14)]


def tuned_suite(out, *, root=None, losses=("bce", "bce+{alpha}*msml"), seeds=(0, 1, 2),
                tune=None, **changes) -> dict:
    """A tuned suite on CXR14-sim (test_resnet, 16 px, 1 epoch of 2 steps)."""
    suite = {
        "name": "tiny-tune",
        "dataset": {"sim": {"images": 120, "size": 32, "seed": 0}, "image_size": 16,
                    "val_fraction": 0.2},
        "grid": {"backbone": ["test_resnet"], "head": ["linear"], "loss": list(losses)},
        "seeds": list(seeds),
        "model": {"pretrained": False},
        "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3,
                  "max_steps_per_epoch": 2, "augment": False, "device": "cpu"},
        "eval": {"bootstrap": 0, "reference": "bce"},
        "tune": tune if tune is not None else {
            "train": {"lr": [1e-3, 3e-3]},
            "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}}},
        "output": str(out),
    }
    if root is not None:
        suite["dataset"]["root"] = str(root)
    suite.update(changes)
    return suite


def plant(db: ResultsDB, runs, val_of, test_signal_of, seed: int = 0) -> None:
    """Register ``runs`` and finish each with a planted validation AUC (``val_of(run)``) and
    test predictions whose signal is ``test_signal_of(run)`` (larger: higher test AUC)."""
    db.add_runs(runs)
    db.set_meta("findings", FINDINGS)
    db.set_meta("reference", "bce")
    db.set_meta("dataset", {"kind": "sim", "root": "x", "image_size": 16})
    base = np.random.default_rng(seed)
    n = 400
    targets = (base.random((n, 14)) < 0.3).astype(np.float32)
    targets[:20], targets[20:40] = 1, 0
    for run in runs:
        claimed = db.claim([run.id])
        assert claimed is not None and claimed["id"] == run.id
        rng = np.random.default_rng([seed, run.seed, int(run.id[:6], 16)])
        signal = test_signal_of(run)
        scores = 1 / (1 + np.exp(-(signal * targets + rng.normal(size=targets.shape))))
        recs = metric_records(targets, scores, FINDINGS, n_boot=0, seed=run.seed)
        recs.append(("val_mean_auc", "", val_of(run), None, None))
        db.finish(run.id, recs, scores, targets,
                  epochs=[{"epoch": 0, "train_loss": 1.0, "val_mean_auc": val_of(run)}])
