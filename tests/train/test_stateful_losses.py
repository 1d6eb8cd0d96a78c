"""The engine honours the contract of losses with state (losses.training_contract): their
parameters train (with their optimizer, PESG / PDSCA), their state is saved in last.pt and
restored, a run interrupted after an epoch and resumed ends bit-identical to an uninterrupted
one, validation never changes the state, hooks run at the right epochs and steps, and
sample indices reach a loss that needs them."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import losses
from losses import _registry
from mlbench.train import (
    EpochLoader,
    TrainConfig,
    deterministic,
    evaluate,
    fit,
    load_training_state,
    loader_kwargs,
)


class _Stop(Exception):
    pass



class _Indexed(Dataset):
    """(x, y, index) samples."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i


def _data(n=96, c=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, c, generator=g)
    y = ((x @ w + 0.5 * torch.randn(n, c, generator=g)) > 0.8).float()
    return x, y


def _model(c=3):
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, c))


def _fit(spec, tmp_path=None, *, stop_after=None, resume=False, cfg=None, indexed=False,
         loss=None, **fit_kwargs):  # fmt: skip
    """3 epochs of a small MLP with dropout (global RNG) on shuffled data, under a seed."""
    with deterministic(0):
        x, y = _data()
        counts = y.sum(dim=0)
        if loss is None and spec is not None:  # neither: the stages in fit_kwargs
            loss = losses.create_loss(spec, stats={"class_counts": counts, "num_samples": len(y)})
        model = _model()
        dataset = _Indexed(x, y) if indexed else TensorDataset(x, y)
        train = EpochLoader(DataLoader(dataset, batch_size=16, shuffle=True, **loader_kwargs(0)), 0)
        val = DataLoader(TensorDataset(x[:48], y[:48]), batch_size=48)
        cfg = cfg or TrainConfig(epochs=3, lr=0.05, warmup_epochs=0.5, optimizer="sgd")

        def on_epoch_end(row):
            if stop_after is not None and row["epoch"] == stop_after:
                raise _Stop

        paths = {}
        if tmp_path is not None:
            paths = {"last_path": tmp_path / "last.pt", "checkpoint_path": tmp_path / "best.pt"}
        state = load_training_state(tmp_path / "last.pt") if resume else None
        res = fit(model, loss, train, val, cfg, on_epoch_end=on_epoch_end, resume=state,
                  **paths, **fit_kwargs)  # fmt: skip
        return model, loss, res


def _strip(history):
    return [{k: v for k, v in r.items() if k not in ("train_time", "eval_time", "images_per_s")}
            for r in history]  # fmt: skip


def _assert_same_tensors(a, b, where=""):
    """Every tensor (and every other value) of two nested states equal, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, where


# Generated from the registry: every stateful loss with its defaults (a new one is covered
# without a line here), then variants that reach other states (v2, a step schedule with
# PESG decays, compauc's AUC phase, SPLC's correction epochs, a weighted sum).
STATEFUL = [n for n in losses.list_losses() if losses.get_loss_info(n).stateful]
RESUME_SPECS = {
    **{name: (name, None) for name in STATEFUL},
    "aucm-v2-step-schedule": ({"name": "aucm", "version": "v2", "margin": 0.6},
                              TrainConfig(epochs=4, lr=0.1, schedule="step")),
    "compauc-k2": ({"name": "compauc", "k": 2}, None),
    "splc-from-epoch-1": ({"name": "splc", "change_epoch": 1, "tau": 0.5}, None),
    "bce+0.5*aucm": ("bce+0.5*aucm", None),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RESUME_SPECS))
def test_stateful_fit_resumed_after_an_epoch_is_bit_identical(tmp_path, name):
    """Interrupted after epoch 0 (an exception in on_epoch_end, after last.pt is written) and
    resumed from last.pt: the history, the model, the loss's state and the whole final
    last.pt (optimizer state included: PESG's reference point, running sum, momentum; RNG
    states; best weights) equal those of the uninterrupted run, bit for bit."""
    spec, cfg = RESUME_SPECS[name]
    a, b = tmp_path / "a", tmp_path / "b"
    model, loss, res = _fit(spec, a, cfg=cfg)
    with pytest.raises(_Stop):
        _fit(spec, b, stop_after=0, cfg=cfg)
    assert load_training_state(b / "last.pt")["epoch"] == 0
    model2, loss2, res2 = _fit(spec, b, resume=True, cfg=cfg)
    assert res2.resumed_from == 0 and res.status == res2.status == "finished"
    assert _strip(res2.history) == _strip(res.history)
    assert res2.total_steps == res.total_steps and res2.best_epoch == res.best_epoch
    _assert_same_tensors(model.state_dict(), model2.state_dict(), "model")
    _assert_same_tensors(loss.state_dict(), loss2.state_dict(), "loss")
    full, resumed = load_training_state(a / "last.pt"), load_training_state(b / "last.pt")
    for state in (full, resumed):  # wall times are the only numbers that may differ
        state["history"] = _strip(state["history"])
        del state["checksum"]  # of the wall times too
    _assert_same_tensors(full, resumed, "last.pt")
    assert "loss" in full  # the loss's state is part of the training state
    contract = losses.training_contract(loss)
    if contract.param_groups:  # the loss's own parameters trained
        fresh = losses.create_loss(spec, stats={"class_counts": [1, 1, 1], "num_samples": 9})
        moved = [not torch.equal(p, q) for p, q in zip(loss.parameters(), fresh.parameters(),
                                                       strict=True)]  # fmt: skip
        assert any(moved)


def test_aucm_trains_with_pesg_and_its_parameters(tmp_path):
    model, loss, res = _fit("aucm", tmp_path)
    assert res.status == "finished" and res.optimizer == "pesg"
    assert res.best_val_mean_auc > 0.6
    assert float(loss.alpha.abs().sum()) > 0 and float(loss.a.abs().sum()) > 0
    state = load_training_state(tmp_path / "last.pt")
    groups = state["optimizer"]["param_groups"]
    assert len(groups) == 3 and groups[2]["lr_scale"] == 1.0 and groups[2]["weight_decay"] == 0.0
    assert set(state["loss"]) == {"a", "b", "alpha", "_extra_state"}


def test_stateless_run_keeps_its_optimizer_and_training_state_format(tmp_path):
    _, _, res = _fit("bce", tmp_path)
    state = load_training_state(tmp_path / "last.pt")
    assert res.optimizer == "sgd" and "loss" not in state
    assert len(state["optimizer"]["param_groups"]) == 2
    assert all("lr_scale" not in g for g in state["optimizer"]["param_groups"])


class _Recorder:
    """Wraps a stateful loss's hooks to record their calls."""

    def __init__(self, loss):
        self.epochs, self.steps = [], []
        epoch_hook, step_hook = loss.on_epoch_start, loss.on_step_start
        loss.on_epoch_start = lambda e: (self.epochs.append(e), epoch_hook(e))[1]
        loss.on_step_start = lambda s: (self.steps.append(s), step_hook(s))[1]


def test_hooks_run_per_training_epoch_and_step_only():
    """on_epoch_start before each training epoch, on_step_start before each training step
    (global index), never in validation; 6 steps per epoch here."""
    loss = losses.create_loss("splc")
    rec = _Recorder(loss)
    _fit(None, loss=loss)
    assert rec.epochs == [0, 1, 2] and rec.steps == list(range(18))
    assert loss.epoch == 2 and loss.step == 17


def test_validation_and_test_passes_change_no_loss_state():
    """evaluate() with a stateful loss (a, b, α set, hooks moved on) leaves its state_dict as
    it was, and calls no hook."""
    x, y = _data()
    loss = losses.create_loss({"name": "compauc", "k": 1}, stats={"num_classes": 3})
    with torch.no_grad():
        loss.a.fill_(0.7)
        loss.b.fill_(0.2)
        loss.alpha.fill_(0.4)
    loss.on_step_start(3)
    rec = _Recorder(loss)
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v)
              for k, v in loss.state_dict().items()}  # fmt: skip
    out = evaluate(_model(), DataLoader(TensorDataset(x, y), batch_size=32), "cpu", loss)
    assert out["loss"] == out["loss"]  # computed
    _assert_same_tensors(before, dict(loss.state_dict()))
    assert rec.epochs == [] and rec.steps == []


def test_pesg_reference_point_moves_at_each_lr_decay():
    """cosine: every epoch after the first starts with a lower lr; "step": the milestones
    (epochs 2 and 3 of 4); "constant": never."""
    calls = {}
    for schedule, epochs in (("cosine", 3), ("step", 4), ("constant", 3)):
        seen = []
        real = losses.PESG.on_lr_decay

        def spy(self, _seen=seen, _real=real):
            _seen.append(self.param_groups[0]["stage_steps"])
            _real(self)

        losses.PESG.on_lr_decay = spy
        try:
            _fit("aucm", cfg=TrainConfig(epochs=epochs, lr=0.1, schedule=schedule))
        finally:
            losses.PESG.on_lr_decay = real
        calls[schedule] = seen
    assert calls == {"cosine": [6, 6], "step": [12, 6], "constant": []}


def test_unregistered_loss_with_parameters_is_refused():
    class Learnable(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, logits, targets):
            return self.scale * nn.functional.binary_cross_entropy_with_logits(logits, targets)

    with pytest.raises(ValueError, match="has parameters but is not a registered loss"):
        _fit(None, loss=Learnable())


def test_resuming_a_stateful_loss_from_a_state_without_it_is_refused(tmp_path):
    with pytest.raises(_Stop):
        _fit("bce", tmp_path, stop_after=0)
    with pytest.raises(ValueError, match="no state of the loss"):
        _fit("aucm", tmp_path, resume=True)


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))


def _register_memory_loss():
    """A test loss with a parameter, param_lr=0.5 with weight decay, needing sample indices."""

    def memory_loss(logits, targets, *, scale, reduction="mean", validate=True):
        value = scale * nn.functional.binary_cross_entropy_with_logits(logits, targets)
        return value * logits.shape[0] if reduction == "sum" else value

    @losses.register_loss("memory", stateful=True, needs_index=True, param_lr=0.5,
                          param_weight_decay=True, reductions=("mean", "sum"), reference="test")  # fmt: skip
    class Memory(losses.StatefulLoss, fn=memory_loss):
        state_names = ("scale",)

        def __init__(self, **options):
            super().__init__(**options)
            self.scale = nn.Parameter(torch.ones(()))
            self.seen = []

        def forward(self, logits, targets, index=None):
            self.seen.append(None if index is None else index.tolist())
            return self.fn(logits, targets, scale=self.scale, **self.options)

    return Memory


def test_sample_indices_reach_a_loss_that_needs_them(scratch_registry):
    _register_memory_loss()
    loss = losses.create_loss("memory")
    model, _, res = _fit(None, loss=loss, indexed=True,
                         cfg=TrainConfig(epochs=1, lr=0.05, optimizer="sgd", weight_decay=0.1))  # fmt: skip
    train_calls = [s for s in loss.seen if s is not None]
    assert sorted(i for s in train_calls for i in s) == list(range(96))  # each sample once
    assert loss.seen[-1] is None  # validation: no indices
    assert res.status == "finished"


def test_a_loss_needing_indices_without_them_says_what_the_loader_must_yield(scratch_registry):
    _register_memory_loss()
    with pytest.raises(ValueError, match=r"\(images, targets, index\)"):
        _fit(None, loss=losses.create_loss("memory"))


def test_loss_parameter_groups_follow_the_declared_rule(scratch_registry):
    from mlbench.train import build_optimizer

    _register_memory_loss()
    cfg = TrainConfig(lr=0.2, weight_decay=0.1, optimizer="adamw")
    opt = build_optimizer(_model(), cfg, losses.create_loss("bce+memory"))
    loss_group = opt.param_groups[2]
    assert loss_group["lr_scale"] == 0.5 and loss_group["weight_decay"] == 0.1
    aucm = build_optimizer(_model(), cfg, losses.create_loss("aucm", stats={"num_classes": 3}))
    assert isinstance(aucm, losses.PESG) and aucm.param_groups[2]["weight_decay"] == 0.0


def test_composites_refuse_two_optimizers_and_a_loss_trained_alone():
    with pytest.raises(ValueError, match="cannot be a term of a weighted sum"):
        losses.create_loss("bce+compauc", stats={"num_classes": 3})
    with pytest.raises(ValueError, match="at most one optimizer"):
        losses.training_contract(
            losses.WeightedSumLoss([
                ("aucm", 1.0, losses.create_loss("aucm", stats={"num_classes": 3})),
                ("compauc", 1.0, losses.create_loss("compauc", stats={"num_classes": 3})),
            ])
        )  # fmt: skip
    composite = losses.create_loss("bce+0.1*aucm", stats={"num_classes": 3})
    contract = losses.training_contract(composite)
    assert contract.optimizer == "pesg" and contract.names == ["aucm"]
    assert len(contract.dual_losses) == 1 and contract.optimizer_options["epoch_decay"] == 2e-3
