"""Multi-stage recipes (mlbench.train.Stage, recipe_stages): BCE pre-training then AUC-M with
PESG in one fit -- the second stage starts from the first's weights, the optimizer switches
to the loss's at the boundary, PESG's reference point is updated at each lr decay inside the
stage, and a fit interrupted at the boundary or inside the AUC-M stage resumes bit-identical."""

from __future__ import annotations

import functools

import pytest
import torch

import losses
from mlbench.train import Stage, TrainConfig, fit, load_training_state, recipe_stages
from tests.train.test_stateful_losses import _assert_same_tensors, _fit, _Stop, _strip

# bce for 1 epoch, then aucm for 3 with PESG at lr 0.1 and the step schedule (decays at the
# starts of its epochs 1 and 2)
RECIPE = {"stages": [{"loss": "bce", "epochs": 1},
                     {"loss": "aucm", "lr": 0.1, "schedule": "step"}]}
CFG = TrainConfig(epochs=4, lr=0.05, warmup_epochs=0.5, optimizer="sgd")
STATS = {"class_counts": [30, 30, 30], "num_samples": 96}


def _stages():
    return recipe_stages(RECIPE, CFG, STATS)


def _recipe_fit(tmp_path=None, **kw):
    stages = _stages()
    model, _, res = _fit(None, tmp_path, cfg=CFG, loss=None, stages=stages, **kw)
    return model, stages, res


def test_recipe_stages_take_their_epochs_and_settings():
    first, second = _stages()
    assert first.cfg.epochs == 1 and first.cfg.optimizer == "sgd" and first.cfg.lr == 0.05
    assert second.cfg.epochs == 3 and second.cfg.lr == 0.1 and second.cfg.schedule == "step"
    assert second.cfg.warmup_epochs == 0 and first.cfg.warmup_epochs == 0.5
    assert losses.training_contract(second.loss_fn).optimizer == "pesg"
    assert (first.label, second.label) == ("bce", "aucm")
    with pytest.raises(ValueError, match=r"leave no epoch for its last stage"):
        recipe_stages({"stages": [{"loss": "bce", "epochs": 4}, {"loss": "aucm"}]}, CFG, STATS)
    with pytest.raises(ValueError, match=r"schedule"):
        recipe_stages({"stages": [{"loss": "bce", "epochs": 1},
                                  {"loss": "aucm", "schedule": "linear"}]}, CFG, STATS)


def test_fit_refuses_stages_that_do_not_add_up():
    stages = [Stage(losses.create_loss("bce"), TrainConfig(epochs=1))]
    with pytest.raises(ValueError, match=r"must add up to cfg.epochs"):
        fit(torch.nn.Linear(8, 3), None, [], [], TrainConfig(epochs=2), stages=stages)


def _spy_pesg(monkeypatch):
    """Record PESG's reference point when built and its decay hook's calls."""
    refs, decays = [], []
    pesg = losses.PESG
    init, decay = pesg.__init__, pesg.on_lr_decay

    @functools.wraps(init)  # create_optimizer reads PESG's signature
    def spy_init(self, params, **kw):
        init(self, params, **kw)
        refs.append([self.state[p]["ref"].clone() for g in self.param_groups
                     for p in g["params"]])

    monkeypatch.setattr(pesg, "__init__", spy_init)
    monkeypatch.setattr(pesg, "on_lr_decay", lambda self: (decays.append(1), decay(self))[1])
    return refs, decays


def test_the_aucm_stage_switches_to_pesg_and_decays(monkeypatch):
    """The optimizer switches at the boundary (sgd, then PESG, built once), the AUC-M stage's
    step schedule starts at its own lr, PESG's decay hook (update_regularizer) runs at the
    stage's two decays."""
    refs, decays = _spy_pesg(monkeypatch)
    _, stages, res = _recipe_fit()
    assert res.status == "finished" and res.optimizer == "sgd>pesg"
    assert [r["stage"] for r in res.history] == ["bce", "aucm", "aucm", "aucm"]
    assert [round(r["lr"], 6) for r in res.history][1:] == [0.1, 0.01, 0.001]
    assert len(refs) == 1 and len(decays) == 2
    assert float(stages[1].loss_fn.alpha.abs().sum()) > 0  # the AUC-M stage trained α


def test_the_second_stage_starts_from_the_first_stage_weights(tmp_path, monkeypatch):
    """Stopped after the BCE stage and resumed: PESG, built at the boundary, has the weights
    the BCE stage ended with as its reference point (then a, b at 0)."""
    with pytest.raises(_Stop):
        _recipe_fit(tmp_path, stop_after=0)
    boundary = load_training_state(tmp_path / "last.pt")
    assert boundary["stage"] == 0 and "loss" not in boundary  # bce: no loss state
    refs, _ = _spy_pesg(monkeypatch)
    _, _, res = _recipe_fit(tmp_path, resume=True)
    assert res.resumed_from == 0 and res.optimizer == "sgd>pesg"
    weights = boundary["model"]
    expected = [weights[k] for k in weights if weights[k].ndim > 1]
    expected += [weights[k] for k in weights if weights[k].ndim <= 1]
    (ref,) = refs
    assert len(ref) == len(expected) + 2
    for got, want in zip(ref, expected, strict=False):
        assert torch.equal(got, want)
    assert not ref[-1].any() and not ref[-2].any()
    state = load_training_state(tmp_path / "last.pt")
    assert state["stage"] == 1 and set(state["loss"]) == {"a", "b", "alpha", "_extra_state"}


@pytest.mark.parametrize("stop_after", [0, 2], ids=["at-the-boundary", "inside-aucm"])
def test_recipe_resumed_is_bit_identical(tmp_path, stop_after):
    """Interrupted after the BCE stage (epoch 0) or inside the AUC-M stage (epoch 2, past one
    PESG decay) and resumed: history, model, AUC-M's state and the whole final last.pt
    (PESG's reference point, running sum, momentum) equal the uninterrupted fit's."""
    a, b = tmp_path / "a", tmp_path / "b"
    model, stages, res = _recipe_fit(a)
    with pytest.raises(_Stop):
        _recipe_fit(b, stop_after=stop_after)
    model2, stages2, res2 = _recipe_fit(b, resume=True)
    assert res2.resumed_from == stop_after and res2.status == res.status == "finished"
    assert _strip(res2.history) == _strip(res.history)
    _assert_same_tensors(model.state_dict(), model2.state_dict(), "model")
    _assert_same_tensors(stages[1].loss_fn.state_dict(), stages2[1].loss_fn.state_dict(), "loss")
    full, resumed = load_training_state(a / "last.pt"), load_training_state(b / "last.pt")
    for state in (full, resumed):
        state["history"] = _strip(state["history"])
        del state["checksum"]
    _assert_same_tensors(full, resumed, "last.pt")


def test_early_stopping_acts_in_the_last_stage_only():
    """Patience 1: a one-stage fit may stop at any epoch; a recipe runs its BCE stage in full
    and counts the patience from the AUC-M stage's first epoch."""
    cfg = TrainConfig(epochs=4, lr=0.05, optimizer="sgd", early_stopping_patience=1)
    stages = recipe_stages({"stages": [{"loss": "bce", "epochs": 2},
                                       {"loss": "aucm", "lr": 1e-6}]}, cfg, STATS)
    _, _, res = _fit(None, cfg=cfg, loss=None, stages=stages)
    stages_seen = [r["stage"] for r in res.history]
    assert stages_seen[:2] == ["bce", "bce"] and "aucm" in stages_seen
    # at lr 1e-6 the AUC-M stage cannot beat the BCE stage's best: it stops after 1 epoch
    assert res.early_stopped and stages_seen == ["bce", "bce", "aucm"]


def test_a_tuned_recipe_stage_builds_its_loss_with_the_tuned_argument():
    # tuning writes the last stage's loss as a mapping (mlbench.suite.tuning._recipe_space)
    tuned = {"stages": [{"loss": "bce", "epochs": 1},
                        {"loss": {"name": "aucm", "margin": 0.6}, "lr": 0.1, "schedule": "step"}]}
    _, second = recipe_stages(tuned, CFG, STATS)
    _, default = _stages()
    assert second.loss_fn.options["margin"] == 0.6 and default.loss_fn.options["margin"] == 1.0
    assert losses.training_contract(second.loss_fn).optimizer == "pesg"
