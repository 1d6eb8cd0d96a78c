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


# ---------------------------------------------------------------- test-split knobs (issue 25)
# sha256 over (relative path, bytes) of every file of a 120-image 16 px folder of seed 3, made
# by the generator before the knobs existed: the defaults must keep it byte for byte.
BEFORE_KNOBS = "cba40d814d5bfe094d168707038803d38fd4b49788171088a0a44a82bbcf6ddd"


def _folder_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_default_knobs_give_the_folder_of_before_byte_for_byte(tmp_path):
    plain = generate_sim(tmp_path / "a", images=120, size=16, seed=3, progress=False)
    explicit = generate_sim(tmp_path / "b", images=120, size=16, seed=3, progress=False,
                            test_fraction=0.2, sick_preference=2.0)
    assert _folder_digest(plain) == _folder_digest(explicit) == BEFORE_KNOBS


def test_knobs_keep_the_training_side_and_grow_a_patient_disjoint_test_split():
    from mlbench.data.sim import split_rows

    base, base_test = split_rows(1500, 4)
    rows, test = split_rows(1500, 4, test_fraction=0.6)
    train = rows[~test].reset_index(drop=True)
    assert train.equals(base[~base_test].reset_index(drop=True))  # training positives kept
    assert test.sum() == round(0.6 / 0.4 * len(train))
    assert not set(rows["Patient ID"][test]) & set(rows["Patient ID"][~test])
    sick = lambda r: (r["Finding Labels"] != "No Finding").mean()  # noqa: E731
    _, flat = split_rows(1500, 4, test_fraction=0.6, sick_preference=0.0)
    strong_rows, strong = split_rows(1500, 4, test_fraction=0.6, sick_preference=8.0)
    flat_rows = split_rows(1500, 4, test_fraction=0.6, sick_preference=0.0)[0]
    assert sick(strong_rows[strong]) > sick(flat_rows[flat]) + 0.05
    with pytest.raises(ValueError, match="test_fraction"):
        split_rows(100, 0, test_fraction=1.0)


def test_knobs_enter_the_marker_only_off_their_defaults(tmp_path):
    from mlbench.data.sim import read_marker, sim_params

    assert sim_params(10, 16, 0, test_fraction=0.2) == {"images": 10, "seed": 0, "size": 16}
    root = generate_sim(tmp_path / "k", images=40, size=16, seed=1, progress=False,
                        test_fraction=0.5, sick_preference=0)
    assert read_marker(root) == {"images": 40, "seed": 1, "size": 16, "test_fraction": 0.5,
                                 "sick_preference": 0.0}
    train = (root / "train_val_list.txt").read_text().split()
    test = (root / "test_list.txt").read_text().split()
    assert len(test) == len(train)
