"""The prepared cache at scale: built once by the driver, opened by workers read-only from
its own folder (no dataset root, no PNG), and never deleted by a process that does not own it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mlbench.data import ChestXray14, prepare_cache
from mlbench.data.cache import tmp_cache_name
from mlbench.driver import prepare_data
from mlbench.suite import load_suite
from tests.helpers import tiny_suite

pytestmark = pytest.mark.scale


def test_workers_open_the_splits_from_the_cache_folder_alone(tmp_path):
    # the cache elsewhere: e.g. node-local or shared storage
    cfg = tiny_suite(tmp_path / "sim", tmp_path / "out",
                     **{"dataset.cache_dir": str(tmp_path / "cache")})
    suite = load_suite(cfg, env={})
    cache = prepare_data(suite.dataset, progress=False)
    root = tmp_path / "sim"
    kw = dict(val_fraction=0.2, seed=0)
    want = {s: ChestXray14(root, s, image_size=16, workers=1, cache_dir=tmp_path / "cache", **kw)
            for s in ("train", "val", "test")}
    shutil.move(root, tmp_path / "gone")  # no raw tree from here on (a worker on another node)
    for split, ref in want.items():
        got = ChestXray14.from_prepared(cache, split, **kw)
        assert len(got) == len(ref) > 0
        assert got.metadata.equals(ref.metadata)
        assert np.array_equal(got.labels, ref.labels)
        assert all(np.array_equal(got.image(i), ref.image(i)) for i in (0, len(got) - 1))
        assert got._cache.images.flags.writeable is False  # memory-mapped read-only
        assert np.array_equal(got.class_counts(), ref.class_counts())


def test_no_process_deletes_a_cache_build_it_does_not_own(tmp_path):
    suite = load_suite(tiny_suite(tmp_path / "sim", tmp_path / "out"), env={})
    first = prepare_data(suite.dataset, progress=False)
    folder = tmp_path / "sim" / ".mlbench_cache"
    # another node's build in progress (its pid means nothing here) and another node's cache
    theirs_tmp = folder / ".tmp-s16-0123456789abcdef0123@node7-1"
    theirs_tmp.mkdir()
    theirs = folder / "s16-ffffffffffffffffffff"
    theirs.mkdir()
    (theirs / "meta.json").write_text(json.dumps({"built_on": "node7"}))
    # a dead process of this host left a build behind
    ours_tmp = folder / tmp_cache_name(folder / "s16-0000")
    ours_tmp = ours_tmp.with_name(ours_tmp.name.rsplit("-", 1)[0] + "-999999999")
    ours_tmp.mkdir()
    shutil.rmtree(first)  # forces a rebuild, which sweeps
    again = prepare_cache(tmp_path / "sim", 16, workers=1, progress=False)
    assert again.name == first.rsplit("/", 1)[-1]
    assert theirs_tmp.is_dir() and theirs.is_dir()  # left alone
    assert not ours_tmp.exists()  # ours, dead: removed
    assert json.loads((again / "meta.json").read_text())["built_on"]
