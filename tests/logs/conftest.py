"""A results.db filled by hand for the status and tracking tests: fake runs in every state."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

from mlbench.db import ResultsDB
from tests.helpers import FINDINGS, fake_scores, fake_targets, plant


@dataclass
class FakeRun:
    id: str
    config: dict

    backbone = property(lambda self: self.config["backbone"])
    head = property(lambda self: self.config["head"])
    loss = property(lambda self: self.config["loss"])
    seed = property(lambda self: self.config["seed"])


def fake_runs(heads=("linear", "bilinear"), losses=("bce", "msml"), seeds=(0, 1)) -> list:
    runs = []
    for h in heads:
        for loss in losses:
            for s in seeds:
                cfg = {"suite": "fake", "backbone": "resnet10t", "head": h, "loss": loss,
                       "seed": s, "train": {"epochs": 3, "lr": 1e-3}, "model": {},
                       "dataset": {"image_size": 32}, "eval": {"bootstrap": 0}}
                runs.append(FakeRun(f"{h[:3]}{loss[:3]}{s:06d}", cfg))
    return runs


def finish_run(db: ResultsDB, run_id: str, *, seed: int = 0, started_ago: float = 60.0,
               epochs: int = 3) -> None:
    """Store a finished result for a claimed run (fake scores, a 3-epoch history) that
    started ``started_ago`` seconds ago."""
    rng = np.random.default_rng(seed)
    targets = fake_targets(rng, 60)
    scores = fake_scores(targets, 1.0, rng)
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_mean_auc": 0.5 + 0.05 * e,
                "val_auc": [0.5 + 0.01 * c for c in range(14)], "best": True, "lr": 1e-3}
               for e in range(epochs)]
    db.conn.execute("UPDATE runs SET started=? WHERE id=?", (time.time() - started_ago, run_id))
    plant(db, run_id, targets, scores, n_boot=20, seed=seed, claim=False, epochs=history,
          records=[("val_mean_auc", "", 0.6, None, None), ("train_seconds", "", 12.5, None, None)],
          device="cpu")


@pytest.fixture
def fake_out(tmp_path):
    """OUT with 8 runs: 4 finished (60 s each), 1 failed, 1 running (with a run file), 2
    pending."""
    from mlbench import logs

    out = tmp_path / "out"
    runs = fake_runs()
    with ResultsDB(out) as db:
        db.add_runs(runs)
        db.set_meta("suite", "fake")
        db.set_meta("findings", FINDINGS)
        for i in range(4):
            run = db.claim()
            finish_run(db, run["id"], seed=i)
        run = db.claim()
        db.fail(run["id"], "FloatingPointError: non-finite training loss at step 3\nTraceback",
                3)
        failed = run["id"]
        run = db.claim()
        running = run["id"]
        db.conn.execute("UPDATE runs SET started=? WHERE id=?", (time.time() - 30, running))
    logs.append(out, running, "claimed", epochs=3)
    logs.append(out, running, "started", worker="otherhost:4242", device="cuda", gpu="1",
                epochs=3)
    logs.append(out, running, "epoch", epoch=0, epochs=3, train_loss=0.9)
    return out, {"failed": failed, "running": running}
