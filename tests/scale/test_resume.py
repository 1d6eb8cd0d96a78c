"""Checkpoints every epoch and mid-run resume: a killed run ends as an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mlbench.cli import main
from mlbench.db import ResultsDB
from mlbench.train import (
    TrainConfig,
    deterministic,
    fit,
    load_checkpoint,
    load_training_state,
    loader_kwargs,
    reseed_loader,
)

from .conftest import results, tiny


class _Stop(Exception):
    pass


class _Epochs:
    """A train loader reseeded per epoch (as the worker's)."""

    def __init__(self, loader, seed):
        self.loader, self.seed = loader, seed

    def set_epoch(self, epoch):
        reseed_loader(self.loader, self.seed, epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def _fit(tmp_path, stop_after=None, resume=False):
    """3 epochs of a small MLP with dropout (uses the global RNG) on shuffled data."""
    with deterministic(0):
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(96, 8, generator=g), (torch.rand(96, 3, generator=g) < 0.4).float()
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        train = _Epochs(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
                                   **loader_kwargs(0)), 0)
        val = DataLoader(TensorDataset(x[:48], y[:48]), batch_size=48)
        cfg = TrainConfig(epochs=3, lr=1e-2, warmup_epochs=0.5)

        def on_epoch_end(row):
            if stop_after is not None and row["epoch"] == stop_after:
                raise _Stop

        state = load_training_state(tmp_path / "last.pt") if resume else None
        res = fit(model, nn.functional.binary_cross_entropy_with_logits, train, val, cfg,
                  on_epoch_end=on_epoch_end, checkpoint_path=tmp_path / "best.pt",
                  last_path=tmp_path / "last.pt", resume=state)
        return model, res


def _strip(history):
    return [{k: v for k, v in r.items() if k not in ("train_time", "eval_time", "images_per_s")}
            for r in history]


def test_fit_resumed_after_an_epoch_equals_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    model, res = _fit(a)
    with pytest.raises(_Stop):
        _fit(b, stop_after=0)
    assert load_training_state(b / "last.pt")["epoch"] == 0
    model2, res2 = _fit(b, resume=True)
    assert res2.resumed_from == 0 and res.resumed_from is None
    assert _strip(res2.history) == _strip(res.history) and len(res.history) == 3
    assert res2.best_epoch == res.best_epoch and res2.total_steps == res.total_steps
    for (k, v), (k2, v2) in zip(model.state_dict().items(), model2.state_dict().items(),
                                strict=True):
        assert k == k2 and torch.equal(v, v2), k
    # best.pt loads weights-only; last.pt holds the whole state
    assert load_checkpoint(b / "best.pt")["epoch"] == res.best_epoch
    state = load_training_state(b / "last.pt")
    assert state["epoch"] == 2 and set(state) >= {"model", "optimizer", "scheduler", "scaler",
                                                   "rng", "history", "early_stopping"}


def test_a_foreign_last_pt_is_one_clear_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read the training state .*last.pt.*delete it"):
        load_training_state(tmp_path / "last.pt")


@pytest.mark.slow
def test_run_killed_after_an_epoch_resumes_with_the_same_result(tmp_path, sim_root,
                                                                 monkeypatch, capsys):
    suite = tiny(sim_root, tmp_path / "killed")
    suite["grid"]["loss"] = ["msml"]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    # the uninterrupted reference
    assert main(["run", str(path), "--no-progress", "--out", str(tmp_path / "whole")]) == 0

    # as a SIGKILL after epoch 0's checkpoint (a Ctrl-C of this process: pytest survives it)
    monkeypatch.setenv("MLBENCH_FAULT", "after_epoch:0:interrupt")
    assert main(["run", str(path), "--no-progress"]) == 130
    out = tmp_path / "killed"
    with ResultsDB(out) as db:
        (run,) = db.runs()
        assert run["status"] == "pending"
        assert db.events(run["id"])[-1]["detail"] == "interrupted (driver stopped: Ctrl-C)"
    last = out / "checkpoints" / run["id"] / "last.pt"
    assert load_training_state(last)["epoch"] == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["run", str(path), "--no-progress"]) == 0
    with ResultsDB(out) as db:
        events = [(e["status"], e["detail"]) for e in db.events(run["id"])]
        assert ("resumed", "from the checkpoint of epoch 0") in events
        assert [s for s, _ in events].count("finished") == 1
        row = db.get_run(run["id"])
        assert row["device"] == "cpu" and row["attempts"] == 2
        names = {m["name"] for m in db.metrics(run["id"])}
        assert {"train_seconds", "train_images_per_s", "val_mean_auc"} <= names
    assert results(out) == results(tmp_path / "whole")  # bit for bit
    # --keep-checkpoints best (default): best.pt stays, weights-only loadable; last.pt gone
    assert not last.exists()
    assert "model" in load_checkpoint(last.parent / "best.pt")
