"""Checkpoints every epoch and mid-run resume of fit: a fit interrupted after an epoch and
resumed ends as an uninterrupted one (the driver's resume: tests/driver/test_resume.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mlbench.train import (
    EpochLoader,
    TrainConfig,
    deterministic,
    fit,
    load_checkpoint,
    load_training_state,
    loader_kwargs,
)

pytestmark = pytest.mark.scale


class _Stop(Exception):
    pass



def _fit(tmp_path, stop_after=None, resume=False):
    """3 epochs of a small MLP with dropout (uses the global RNG) on shuffled data."""
    with deterministic(0):
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(96, 8, generator=g), (torch.rand(96, 3, generator=g) < 0.4).float()
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        train = EpochLoader(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True,
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
