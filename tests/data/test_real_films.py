"""The NIH loader, cache, transforms and test sets on real ChestX-ray14 films
(../shared/data/nih-real-256: 2,644 films in the release layout; read, never copied into the
repository). Skipped with the reason when the folder is absent."""

from __future__ import annotations

import gzip
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mlbench.data import ChestXray14, build_transforms, prepare_cache
from mlbench.data.cache import load_resized, open_prepared
from mlbench.data.release import decode_png, parse_findings, read_label_table, shipped_table
from mlbench.data.testsets import create_test_set

from .conftest import shared_data

REAL = shared_data("nih-real-256")
OFFICIAL = shared_data("nih-official-split")
pytestmark = pytest.mark.skipif(not (REAL / "images").is_dir(),
                                reason=f"real films not found at {REAL} (../shared/data)")


@pytest.fixture(scope="module")
def sources():
    return pd.read_csv(REAL / "SOURCES.tsv", sep="\t").set_index("name")


def test_every_film_decodes_at_its_size(sources):
    seen = {}
    for path in sorted((REAL / "images").iterdir()):
        with Image.open(path) as im:
            mode, size = im.mode, im.size
        arr = decode_png(path)
        assert arr.dtype == np.uint8 and arr.shape == (size[1], size[0]), path.name
        seen[path.name] = (mode, size[0])
    assert len(seen) == len(sources) == 2644
    # the README's sizes: full-resolution sources downscaled to 256 px, thumbnails kept
    want = sources["w"].where(sources["w"] < 256, 256)
    assert all(seen[n][1] == want[n] for n in seen)
    sizes = pd.Series([s for _, s in seen.values()]).value_counts().to_dict()
    assert sizes == {256: 1655, 64: 985, 128: 4}


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_the_sources_modes_decode_to_the_same_grey(tmp_path, sources, mode):
    # the films came as L, RGB and RGBA with the same grey in every channel (SOURCES.tsv)
    assert set(sources["mode"]) <= {"L", "RGB", "RGBA"}
    names = [sources.index[sources["w"] == w][0] for w in (1024, 256, 128, 64)]
    for name in names:
        grey = decode_png(REAL / "images" / name)
        with Image.open(REAL / "images" / name) as im:
            im.convert(mode).save(tmp_path / name)
        np.testing.assert_array_equal(decode_png(tmp_path / name), grey)


def test_labels_and_patients_match_the_tables():
    meta, labels = read_label_table(REAL / "Data_Entry_2017_v2020.csv")
    want = dict(zip(meta.image, labels, strict=True))
    pats = dict(zip(meta.image, meta.patient, strict=True))
    for split in ("train_val", "test"):
        ds = ChestXray14(REAL, split)
        for name, y, p in zip(ds.metadata.image, ds.labels, ds.metadata.patient, strict=True):
            np.testing.assert_array_equal(y, want[name])
            assert p == pats[name]
    # and the folder's rows are the official 2020 table's, unchanged
    ref = pd.read_csv(shipped_table("Data_Entry_2017_v2020.csv.gz"), dtype=str,
                      keep_default_na=False).set_index("Image Index")
    raw = pd.read_csv(REAL / "Data_Entry_2017_v2020.csv", dtype=str,
                      keep_default_na=False).set_index("Image Index")
    for col in ("Finding Labels", "Patient ID", "View Position", "Patient Age"):
        assert (raw[col] == ref.loc[raw.index, col]).all(), col
    np.testing.assert_array_equal(parse_findings(raw["Finding Labels"]), labels)


def test_the_official_split_holds():
    test, tv = ChestXray14(REAL, "test"), ChestXray14(REAL, "train_val")
    assert (len(test), len(tv)) == (563, 2081)
    pt, pv = set(test.metadata.patient), set(tv.metadata.patient)
    assert (len(pt), len(pv), len(pt & pv)) == (194, 1363, 0)
    on_disk = {p.name for p in (REAL / "images").iterdir()}
    assert set(test.metadata.image) | set(tv.metadata.image) == on_disk
    if (OFFICIAL / "test_list.txt").is_file():
        official_test = set((OFFICIAL / "test_list.txt").read_text().split())
        official_tv = set((OFFICIAL / "train_val_list.txt").read_text().split())
        assert set(test.metadata.image) <= official_test
        assert set(tv.metadata.image) <= official_tv
    for s in ("train", "val"):  # validation carved out of train_val by patient
        ds = ChestXray14(REAL, s, val_fraction=0.2, seed=1)
        assert set(ds.metadata.patient) <= pv
    va = set(ChestXray14(REAL, "val", val_fraction=0.2, seed=1).metadata.patient)
    tr = set(ChestXray14(REAL, "train", val_fraction=0.2, seed=1).metadata.patient)
    assert not va & tr and va | tr == pv


@pytest.mark.slow
def test_cache_and_transforms_on_real_films(tmp_path, sources):
    cache = prepare_cache(REAL, 64, workers=1, cache_dir=tmp_path / "c", progress=False)
    opened = open_prepared(cache)
    assert opened.images.shape == (2644, 64, 64)
    for w in (1024, 256, 128, 64):  # every size of the folder
        for name in sources.index[sources["w"] == w][:5]:
            row = opened.row[name]
            np.testing.assert_array_equal(opened.images[row],
                                          load_resized(REAL / "images" / name, 64))
            if w == 64:  # a 64 px thumbnail is cached as it is
                np.testing.assert_array_equal(opened.images[row],
                                              decode_png(REAL / "images" / name))
    a = ChestXray14(REAL, "test", image_size=64, cache_dir=tmp_path / "c")
    b = ChestXray14.from_prepared(cache, "test")
    assert a.metadata.equals(b.metadata) and np.array_equal(a.labels, b.labels)
    assert torch.equal(a.image(7), b.image(7)) and b.coverage_note() is None
    ev = build_transforms(False, 64, 0.5, 0.25)
    tr = build_transforms(True, 64, 0.5, 0.25, augment=True)
    batch = torch.stack([ev(b.image(i)) for i in range(16)])
    assert batch.shape == (16, 1, 64, 64) and torch.isfinite(batch).all()
    assert 0.05 < batch.std() and -3 < batch.mean() < 3  # real films, not blank
    torch.manual_seed(0)
    aug = tr(b.image(0))
    assert aug.shape == (1, 64, 64) and not torch.equal(aug, ev(b.image(0)))
    # 256 px films read at 128 px and from the PNGs at full size
    x, y = ChestXray14(REAL, "test")[int(np.flatnonzero(
        sources.loc[b.metadata.image, "w"].to_numpy() >= 256)[0])]
    assert x.shape == (1, 256, 256) and y.shape == (14,)


def test_test_sets_on_the_real_films():
    expert, bbox = create_test_set("nih-expert", REAL), create_test_set("nih-bbox", REAL)
    assert len(expert) == 36 and len(np.unique(expert.patients)) == 27
    boxed = bbox.mask & (bbox.labels == 1)
    assert len(np.flatnonzero(boxed.any(axis=1))) == 62
    assert len(create_test_set("nih", REAL)) == 563


@pytest.fixture(scope="module")
def partial_release(tmp_path_factory):
    """A user's partial NIH release: the full official lists and 2020 table, and only the
    2,644 films present (as links, in images_001/images/)."""
    if not (OFFICIAL / "test_list.txt").is_file():
        pytest.skip(f"official split lists not found at {OFFICIAL}")
    root = tmp_path_factory.mktemp("partial")
    with gzip.open(shipped_table("Data_Entry_2017_v2020.csv.gz"), "rb") as src, \
            open(root / "Data_Entry_2017_v2020.csv", "wb") as dst:
        shutil.copyfileobj(src, dst)
    for name in ("train_val_list.txt", "test_list.txt"):
        shutil.copy(OFFICIAL / name, root / name)
    images = root / "images_001" / "images"
    images.mkdir(parents=True)
    for path in (REAL / "images").iterdir():
        (images / path.name).symlink_to(path)
    return root


@pytest.mark.slow
def test_a_partial_release_restricts_the_official_split_and_says_so(partial_release):
    with pytest.raises(FileNotFoundError, match=r"25033 of 25596 listed image\(s\) not found"):
        ChestXray14(partial_release, "test")
    with pytest.warns(UserWarning, match=r"restricted to the 563 of its 25,596 listed images "
                                         r"present \(194 of 2,797 patients\)"):
        test = ChestXray14(partial_release, "test", missing="skip")
    assert len(test) == 563
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tv = ChestXray14(partial_release, "train_val", missing="skip")
        expert = create_test_set("nih-expert", partial_release, missing="skip")
    assert len(tv) == 2081 and "train_val_list.txt restricted to the 2,081" in tv.coverage_note()
    assert len(expert) == 36 and any("restricted to the 563" in n for n in expert.notes)
    assert any("36 of the 1,962 expert-labelled" in n for n in expert.notes)
