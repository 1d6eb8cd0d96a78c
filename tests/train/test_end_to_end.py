"""End to end on a tiny CXR14-sim: data -> model -> loss (with dataset stats) -> fit -> evaluate."""

import numpy as np
import pytest
from torch.utils.data import DataLoader

from mlbench.models import build_model
from mlbench.train import TrainConfig, deterministic, evaluate, fit, loader_kwargs

data = pytest.importorskip("mlbench.data")
losses = pytest.importorskip("losses")

SIZE = 32


@pytest.fixture(scope="module")
def learnable_sim(tmp_path_factory):
    """A CXR14-sim large enough to learn from in 6 epochs (800 images of 32 px), not the
    session's tiny one (``sim_root``)."""
    return data.generate_sim(tmp_path_factory.mktemp("cxr14sim"), images=800, size=SIZE, seed=0)


def _train(root, seed=0):
    with deterministic(seed):
        model = build_model("test_efficientnet", "linear", num_classes=len(data.FINDINGS))

        def split(name):
            tf = data.build_transforms(name == "train", SIZE, model.norm_mean, model.norm_std,
                                       augment=False)
            return data.ChestXray14(root, name, image_size=SIZE, transform=tf, val_fraction=0.35,
                                    seed=seed)

        train, val = split("train"), split("val")
        stats = train.stats()
        loss = losses.create_loss("bce+0.1*msml", stats=stats)
        tl = DataLoader(train, batch_size=16, shuffle=True, drop_last=True, **loader_kwargs(seed))
        vl = DataLoader(val, batch_size=64)
        res = fit(model, loss, tl, vl, TrainConfig(epochs=6, lr=1e-2, warmup_epochs=1))
        out = evaluate(model, vl, "cpu")
    return train, res, out


@pytest.mark.slow
def test_cxr14_sim_beats_chance_and_repeats_bit_identically(learnable_sim):
    train, r1, o1 = _train(learnable_sim)
    assert r1.status == "finished" and len(r1.history) == 6
    np.testing.assert_array_equal(train.stats()["class_counts"], train.class_counts())
    assert o1["mean_auc"] == r1.best_val_mean_auc > 0.55  # chance: 0.5
    effusion = data.FINDINGS.index("Effusion")  # a clearly rendered sign
    assert o1["auc"][effusion] > 0.8
    _, r2, o2 = _train(learnable_sim)
    np.testing.assert_array_equal(o1["scores"], o2["scores"])
    assert [h["val_auc"] for h in r1.history] == [h["val_auc"] for h in r2.history]
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
