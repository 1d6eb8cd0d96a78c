"""Engine: learning, bit-identical repeats, NaN failure, checkpoints, schedule, config."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlbench.models import build_model
from mlbench.train import (
    FitResult,
    TrainConfig,
    deterministic,
    evaluate,
    fit,
    load_checkpoint,
    lr_at,
    save_checkpoint,
)
from tests.helpers import NanAt


@pytest.fixture
def run(task, loaders):
    """Function: one seeded fit + final evaluate -> (model, FitResult, evaluate dict)."""

    def _run(seed=0, cfg=None, loss=None, head="linear", **fit_kwargs):
        with deterministic(seed):
            model = build_model("test_efficientnet", head, num_classes=3)
            tl, vl = loaders(*task, seed)
            cfg = cfg or TrainConfig(epochs=3, lr=3e-3, warmup_epochs=0.5, grad_clip=5.0)
            res = fit(model, loss or F.binary_cross_entropy_with_logits, tl, vl, cfg, **fit_kwargs)
            out = evaluate(model, vl, "cpu", F.binary_cross_entropy_with_logits)
        return model, res, out

    return _run


def test_fit_learns_and_repeats_bit_identically(run):
    rows = []
    m1, r1, o1 = run(on_epoch_end=rows.append)
    m2, r2, o2 = run()
    assert isinstance(r1, FitResult) and r1.status == "finished" and r1.failure is None
    assert r1.best_val_mean_auc > 0.8  # chance is 0.5
    assert o1["mean_auc"] == r1.best_val_mean_auc  # best weights restored
    assert rows == r1.history and len(rows) == 3 and rows[r1.best_epoch]["best"]
    # bit-identical: scores, losses and every history number
    np.testing.assert_array_equal(o1["scores"], o2["scores"])
    assert o1["loss"] == o2["loss"]
    for a, b in zip(r1.history, r2.history, strict=True):
        assert {k: v for k, v in a.items() if "time" not in k and k != "images_per_s"} == \
               {k: v for k, v in b.items() if "time" not in k and k != "images_per_s"}
    for (k, v), w in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_different_seed_differs(run):
    _, _, o1 = run(seed=0, cfg=TrainConfig(epochs=1))
    _, _, o2 = run(seed=1, cfg=TrainConfig(epochs=1))
    assert not np.array_equal(o1["scores"], o2["scores"])


@pytest.mark.parametrize("check_every", [1, 4, 50])
def test_non_finite_loss_stops_with_step(run, tmp_path, check_every):
    cfg = TrainConfig(epochs=3, nan_check_every=check_every)
    # 6 steps per epoch: step 9 is in epoch 1, after epoch 0 made a checkpoint
    model, res, out = run(cfg=cfg, loss=NanAt(9), checkpoint_path=tmp_path / "best.pt")
    assert res.status == "failed" and res.failed_step == 9
    assert "non-finite" in res.failure and "step 9" in res.failure
    assert len(res.history) == 1 and res.best_epoch == 0
    assert np.isfinite(out["scores"]).all()  # best (finite) weights restored
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 0


def test_nan_on_first_step_fails_without_history(run):
    _, res, _ = run(cfg=TrainConfig(epochs=2, nan_check_every=1), loss=NanAt(0))
    assert res.status == "failed" and res.failed_step == 0 and res.history == []


def test_checkpoint_round_trip(run, tmp_path):
    model, res, _ = run(head="bilinear", cfg=TrainConfig(epochs=2), checkpoint_path=tmp_path / "b.pt")
    ckpt = load_checkpoint(tmp_path / "b.pt")
    assert ckpt["epoch"] == res.best_epoch and ckpt["val_mean_auc"] == res.best_val_mean_auc
    fresh = build_model("test_efficientnet", "bilinear", num_classes=3)
    load_checkpoint(tmp_path / "b.pt", fresh)
    for (k, v), w in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    save_checkpoint(tmp_path / "sub" / "c.pt", fresh, note="x")
    assert load_checkpoint(tmp_path / "sub" / "c.pt")["note"] == "x"
    # build_model accepts a full-model checkpoint as `weights`
    again = build_model("test_efficientnet", "bilinear", num_classes=3, weights=tmp_path / "b.pt")
    assert torch.equal(again.head.fc.weight, model.head.fc.weight)


def test_early_stopping(task, loaders):
    # zero gradient, no weight decay, no BatchNorm: the weights never move, so the val AUC
    # never improves after epoch 0 and training stops after `patience` more epochs
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    cfg = TrainConfig(epochs=10, weight_decay=0.0, early_stopping_patience=2)
    res = fit(model, lambda z, y: (z * 0).sum(), *loaders(*task), cfg)
    assert res.early_stopped and len(res.history) == 3 and res.best_epoch == 0
    assert res.total_steps == 3 * 6


def test_sgd_and_max_steps(run):
    cfg = TrainConfig(epochs=2, optimizer="sgd", lr=0.05, max_steps_per_epoch=2, nesterov=True)
    _, res, _ = run(cfg=cfg)
    assert res.status == "finished" and [h["steps"] for h in res.history] == [2, 2]
    assert res.history[0]["images"] == 32


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, min_lr=0.1)
    lrs = [lr_at(s, 20, 5, cfg) for s in range(20)]
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lrs[5] == 1.0 and all(a >= b for a, b in zip(lrs[5:], lrs[6:], strict=False))
    assert lr_at(20, 20, 5, cfg) == pytest.approx(0.1)
    assert lr_at(7, 20, 0, TrainConfig(lr=0.3, schedule="constant")) == 0.3


def test_config_validation():
    with pytest.raises(ValueError, match=r"`optimizer`.*\['adamw', 'sgd'\].*'adam'"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match=r"Unknown training option\(s\) \['epochz'\]"):
        TrainConfig.from_dict({"epochz": 3})
    # bad betas failed inside AdamW at the first run, not at load
    for betas in ([0.9], [0.9, 1.5], "ab"):
        with pytest.raises(ValueError, match=r"`betas` two numbers in \[0, 1\)"):
            TrainConfig(betas=betas)
    assert TrainConfig.from_dict({"epochs": 3, "betas": [0.9, 0.99]}).betas == (0.9, 0.99)


def test_amp_on_cpu_warns_and_runs_fp32(run):
    with pytest.warns(UserWarning, match="CUDA only"):
        _, res, _ = run(cfg=TrainConfig(epochs=1, amp=True, max_steps_per_epoch=1))
    assert res.status == "finished"


def test_evaluate_with_skipped_class(task):
    _, val = task
    x, y = val.tensors
    y = y.clone()
    y[:, 1] = 0
    model = build_model("test_efficientnet", "linear", num_classes=3)
    out = evaluate(model, [(x, y)], "cpu")
    assert out["skipped"] == [1] and math.isnan(out["auc"][1]) and not math.isnan(out["mean_auc"])
    assert out["scores"].shape == (64, 3) and (out["scores"] >= 0).all() and (out["scores"] <= 1).all()
    assert math.isnan(out["loss"])


def test_evaluate_non_finite_outputs_raise(task):
    model = build_model("test_efficientnet", "linear", num_classes=3)
    with torch.no_grad():
        model.head.fc.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError):
        evaluate(model, [task[1].tensors], "cpu")


def test_evaluate_classes_scores_the_first_outputs_only(task, loaders):
    """``classes=2`` on a 3-output model (the "No Finding" output of model.no_finding is the
    last): the scores and metrics of the first two outputs, equal to scoring a model whose
    last output is cut off; the loss is still over every output."""
    with deterministic(0):
        model = build_model("test_efficientnet", "linear", num_classes=3)
    _, vl = loaders(*task, 0)
    full = evaluate(model, vl, "cpu", F.binary_cross_entropy_with_logits)
    cut = evaluate(model, vl, "cpu", F.binary_cross_entropy_with_logits, classes=2)
    assert cut["scores"].shape[1] == 2 and len(cut["auc"]) == 2
    np.testing.assert_array_equal(cut["scores"], full["scores"][:, :2])
    np.testing.assert_array_equal(cut["auc"], full["auc"][:2])
    assert cut["loss"] == full["loss"]
    assert cut["mean_auc"] == pytest.approx(float(np.nanmean(full["auc"][:2])))
