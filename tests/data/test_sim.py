from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from mlbench.data import FINDINGS, ChestXray14, generate_sim
from mlbench.data.phantom import VISIBLE, render
from mlbench.data.sim import reference_table_path


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return generate_sim(
        tmp_path_factory.mktemp("sim") / "a", images=60, size=32, seed=7, progress=False
    )


def test_same_seed_byte_identical_other_seed_differs(sim, tmp_path):
    again = generate_sim(tmp_path / "b", images=60, size=32, seed=7, progress=False)
    other = generate_sim(tmp_path / "c", images=60, size=32, seed=8, progress=False)
    a, b, c = _digest(sim), _digest(again), _digest(other)
    assert len(a) == 60 + 4 and a == b  # PNGs, label table, two lists, marker
    assert a["Data_Entry_2017_v2020.csv"] != c["Data_Entry_2017_v2020.csv"]


def test_nih_layout_and_rows_verbatim(sim):
    csv = pd.read_csv(sim / "Data_Entry_2017_v2020.csv", dtype=str, keep_default_na=False)
    ref = pd.read_csv(reference_table_path(), dtype=str, keep_default_na=False).set_index(
        "Image Index"
    )
    assert len(csv) == 60 and csv.columns.tolist() == ["Image Index", *ref.columns]
    pd.testing.assert_frame_equal(csv.set_index("Image Index"), ref.loc[csv["Image Index"]])
    listed = (sim / "train_val_list.txt").read_text().split() + (
        sim / "test_list.txt"
    ).read_text().split()
    assert sorted(listed) == sorted(csv["Image Index"])
    assert {p.name for p in (sim / "images").iterdir()} == set(listed)


def test_loader_reads_sim_patient_disjoint(sim):
    parts = {s: ChestXray14(sim, s, val_fraction=0.2) for s in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 60
    pats = {s: set(d.metadata.patient) for s, d in parts.items()}
    assert (
        not (pats["train"] & pats["test"])
        and not (pats["val"] & pats["test"])
        and not (pats["train"] & pats["val"])
    )
    x, y = parts["test"][0]
    assert x.shape == (1, 32, 32) and y.shape == (14,)
    cached = ChestXray14(sim, "test", image_size=32, workers=1)
    assert (cached[0][0] == x).all()


def test_signs_change_pixels():
    """Every finding, when shown, changes the rendered film (same rng stream otherwise)."""
    base = render(np.zeros(14, np.float32), "PA", "M", 50, 64, np.random.default_rng(0))
    for i, name in enumerate(FINDINGS):
        lab = np.zeros(14, np.float32)
        lab[i] = 1
        imgs = [render(lab, "PA", "M", 50, 64, np.random.default_rng(s)) for s in range(6)]
        assert any(np.abs(im.astype(int) - base).mean() > 0.5 for im in imgs), name
    assert set(VISIBLE) == set(FINDINGS)


def test_bad_size(tmp_path):
    with pytest.raises(ValueError, match="size"):
        generate_sim(tmp_path, images=4, size=8)
