from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mlbench.data import ChestXray14, prepare_cache
from mlbench.data import cache as cache_mod
from mlbench.data.cache import CorruptImageError, find_cache, load_resized
from mlbench.data.release import decode_png

from .conftest import write_nih


def _cached(root):
    return sorted(p.name for p in (root / ".mlbench_cache").iterdir())


def test_round_trip_equals_decoded(nih):
    root, info = nih
    path = prepare_cache(root, 32, workers=1, progress=False)
    names = (path / "index.txt").read_text().split()
    images = np.load(path / "images.npy", mmap_mode="r")
    assert sorted(names) == sorted(info["names"]) and images.shape == (len(names), 32, 32)
    for name, img in zip(names, images, strict=True):
        np.testing.assert_array_equal(img, decode_png(root / "images" / name))
    for split in ("train", "test"):
        a, b = ChestXray14(root, split), ChestXray14(root, split, image_size=32)
        assert all(
            torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(len(a))
        )


def test_resized_cache_matches_load_resized_and_parallel(tmp_path):
    root = tmp_path / "d"
    write_nih(root, layout="split", size=48)
    one = prepare_cache(root, 16, workers=1, progress=False, cache_dir=tmp_path / "c1")
    two = prepare_cache(root, 16, workers=2, progress=False, cache_dir=tmp_path / "c2")
    a, b = np.load(one / "images.npy"), np.load(two / "images.npy")
    np.testing.assert_array_equal(a, b)
    name = (one / "index.txt").read_text().split()[0]
    path = next(root.glob(f"images_*/images/{name}"))
    np.testing.assert_array_equal(a[0], load_resized(path, 16))


def test_stale_cache_rebuilt(nih):
    root, info = nih
    first = prepare_cache(root, 32, workers=1, progress=False)
    assert prepare_cache(root, 32, workers=1, progress=False) == first  # up to date: reused
    f = info["label_file"]
    f.write_text(f.read_text().replace("Hernia", "Mass"))
    assert find_cache(root, 32) is None
    ds = ChestXray14(root, "train_val", image_size=32, workers=1)
    assert ds._cache.path != first and not first.exists()
    assert ds.class_counts()[13] == 0  # the new labels
    # new pixels for an image -> stale too
    name = info["names"][1]
    os.utime(root / "images" / name, ns=(1, 1))
    assert find_cache(root, 32) is None


def test_killed_prepare_leaves_no_usable_cache(nih, monkeypatch):
    root, _ = nih
    calls = {"n": 0}
    real = cache_mod.load_resized

    def dying(path, size):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # like a Ctrl-C mid-write
        return real(path, size)

    monkeypatch.setattr(cache_mod, "load_resized", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(root, 32, workers=1, progress=False)
    assert find_cache(root, 32) is None and _cached(root) == []
    # a hard kill leaves its temp folder behind: never read, removed by the next prepare
    monkeypatch.setattr(cache_mod, "load_resized", real)
    leftover = root / ".mlbench_cache" / ".tmp-s32-deadbeef-999999999"
    leftover.mkdir()
    assert find_cache(root, 32) is None
    ds = ChestXray14(root, "test", image_size=32, workers=1)
    assert len(ds) > 0 and not leftover.exists()


def test_corrupt_image_found_at_prepare(nih):
    root, info = nih
    bad = root / "images" / info["names"][2]
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(
        CorruptImageError, match=rf"1 image\(s\) could not be decoded.*{info['names'][2]}"
    ):
        prepare_cache(root, 32, workers=1, progress=False)
    assert find_cache(root, 32) is None


def test_cache_missing_images(nih):
    root, info = nih
    (root / "images" / info["names"][0]).unlink()
    with pytest.raises(FileNotFoundError, match="1 of .* not found"):
        ChestXray14(root, "train_val", image_size=32, workers=1)
    with pytest.warns(UserWarning, match="Skipping 1"):
        assert len(ChestXray14(root, "train_val", image_size=32, missing="skip")) > 0


def test_bad_size(nih):
    with pytest.raises(ValueError, match="size"):
        prepare_cache(nih[0], 4)


def test_pickled_dataset_reopens_memmap(nih):
    import pickle

    ds = ChestXray14(nih[0], "test", image_size=32, workers=1)
    blob = pickle.dumps(ds)
    assert len(blob) < ds._cache.images.nbytes  # pixels are not copied into the pickle
    again = pickle.loads(blob)
    assert isinstance(again._cache.images, np.memmap) and torch.equal(again[1][0], ds[1][0])
