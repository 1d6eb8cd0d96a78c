"""A prepared cache damaged or truncated while a run reads it through DataLoader worker
processes: one line naming images.npy and the fix, not "Caught CacheError in DataLoader
worker process 0." over a worker's traceback, nor a SIGBUS reported as "insufficient shared
memory" (issue 24, partial cases)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mlbench.data import ChestXray14, prepare_cache
from mlbench.data.cache import CacheError

pytestmark = pytest.mark.reliability


def _read_all(dataset, workers: int, context: str | None = None) -> None:
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=workers,
                                         multiprocessing_context=context)
    for _ in loader:
        pass


@pytest.fixture
def opened(nih):
    """(cache folder, its train split opened) of the NIH fixture at 16 px."""
    root, _ = nih
    path = prepare_cache(root, 16, workers=1, progress=False)
    return path, ChestXray14.from_prepared(path, "train")


def _assert_one_line(exc: CacheError, path, what: str) -> None:
    line = str(exc)
    assert "\n" not in line and not line.startswith("Caught"), line
    assert line.startswith(f"the prepared cache {path / 'images.npy'} {what}"), line
    assert f"delete the folder {path} and run again" in line


def test_pixels_changed_read_in_loader_workers(opened):
    path, dataset = opened
    images = np.load(path / "images.npy", mmap_mode="r+")
    images[:] = 255 - images  # inverted after the run opened it
    images.flush()
    del images
    with pytest.raises(CacheError) as err:
        _read_all(dataset, workers=2)
    _assert_one_line(err.value, path, "was changed after it was built")


def test_truncated_while_read_in_loader_workers(opened):
    path, dataset = opened
    npy = path / "images.npy"
    os.truncate(npy, npy.stat().st_size // 2)  # the forked workers share the memory map
    with pytest.raises(CacheError) as err:
        _read_all(dataset, workers=2)
    _assert_one_line(err.value, path, "was truncated while in use")


def test_truncated_before_spawned_workers_open_it(opened):
    path, dataset = opened
    npy = path / "images.npy"
    os.truncate(npy, npy.stat().st_size - 100)  # a spawned worker maps the file anew
    with pytest.raises(CacheError) as err:
        _read_all(dataset, workers=1, context="spawn")
    _assert_one_line(err.value, path, "is truncated")
    assert "mmap length" not in str(err.value)
