"""The "No Finding" label (``model.no_finding``): the NIH loader derives it from the release's
"No Finding" rows, CXR14-sim's healthy films carry it the same way, ``WithNoFinding``
appends it as a 15th target and counts it in ``stats()``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlbench.data import ChestXray14, WithNoFinding


def test_no_finding_is_the_release_label_of_cxr14_sim(sim_root):
    ds = ChestXray14(sim_root, "train", image_size=16, val_fraction=0.2)
    table = pd.read_csv(next(sim_root.glob("Data_Entry*.csv"))).set_index("Image Index")
    healthy = (table.loc[ds.metadata.image, "Finding Labels"] == "No Finding").to_numpy()
    assert np.array_equal(ds.no_finding() == 1, healthy)
    assert 0 < healthy.mean() < 1  # CXR14-sim has healthy and sick films


def test_with_no_finding_appends_the_label(sim_root):
    ds = ChestXray14(sim_root, "val", image_size=16, val_fraction=0.2)
    wrapped = WithNoFinding(ds)
    img, y = wrapped[0]
    img0, y0 = ds[0]
    assert y.shape == (15,) and np.array_equal(y[:14].numpy(), y0.numpy())
    assert float(y[14]) == float(y0.sum() == 0)
    assert np.array_equal(img.numpy(), img0.numpy()) and len(wrapped) == len(ds)
    stats = wrapped.stats()
    assert stats["class_counts"].shape == (15,) and stats["num_samples"] == len(ds)
    assert stats["class_counts"][14] == int(ds.no_finding().sum())
