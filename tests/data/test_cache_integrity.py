"""A prepared cache proves what it is (issue 24, items 1, 2 and 9): pixels changed in place
after the build are refused, a truncated images.npy is named with the fix, a full disk while
building is one line (device, size, fix) with nothing left behind, SIGTERM ends a build."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mlbench.data import ChestXray14, prepare_cache
from mlbench.data import cache as cache_mod
from mlbench.data.cache import CacheError, CacheSpaceError, open_prepared

from .conftest import REPO, write_nih

pytestmark = pytest.mark.reliability


def _inverted(path: Path, rows=slice(None)) -> None:
    """Invert pixels of images.npy in place (what the issue's user did)."""
    images = np.load(path / "images.npy", mmap_mode="r+")
    images[rows] = 255 - images[rows]
    images.flush()
    del images


def test_pixels_changed_in_place_are_refused(nih):
    root, _ = nih
    path = prepare_cache(root, 16, workers=1, progress=False)
    ChestXray14.from_prepared(path, "train")[0]  # intact: read
    _inverted(path)
    with pytest.raises(CacheError) as err:  # found for a run: a sample of chunks is checked
        prepare_cache(root, 16, workers=1, progress=False)
    line = str(err.value)
    assert f"{path / 'images.npy'} was changed after it was built" in line
    assert f"delete the folder {path} and run again" in line and "\n" not in line
    ds = ChestXray14.from_prepared(path, "test")  # opened by a worker: refused when read
    with pytest.raises(CacheError, match="do not match their checksum"):
        ds[0]


def test_a_changed_chunk_outside_the_sample_is_refused_when_read(nih, monkeypatch):
    root, _ = nih
    monkeypatch.setattr(cache_mod, "CHUNK", 2)  # many chunks from a tiny dataset
    monkeypatch.setattr(cache_mod, "SAMPLE_CHUNKS", 0)  # the sample: first and last only
    path = prepare_cache(root, 16, workers=2, progress=False)
    cache = open_prepared(path)
    assert len(cache.digests) == -(-len(cache.row) // 2) > 3
    _inverted(path, slice(2, 4))  # chunk 1
    assert prepare_cache(root, 16, workers=1, progress=False) == path  # not in the sample
    cache = open_prepared(path)
    cache.image(0)  # chunk 0: intact
    with pytest.raises(CacheError, match=r"rows 2-3 do not match"):
        cache.image(3)


def test_truncated_cache_names_the_file_and_the_fix(nih):
    root, _ = nih
    path = prepare_cache(root, 16, workers=1, progress=False)
    npy = path / "images.npy"
    os.truncate(npy, npy.stat().st_size - 100)
    for opening in (lambda: prepare_cache(root, 16, workers=1, progress=False),
                    lambda: open_prepared(path)):
        with pytest.raises(CacheError) as err:
            opening()
        line = str(err.value)
        assert f"the prepared cache {npy} is truncated" in line, line
        assert f"delete the folder {path}" in line and "mmap length" not in line


def test_run_on_a_changed_cache_is_one_line(sim_root, tmp_path, capsys):
    from tests.helpers import cli, one_error, tiny_suite, write_suite

    root = tmp_path / "sim"
    shutil.copytree(sim_root, root)
    out = tmp_path / "out"
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(root, out))
    cache = next((root / ".mlbench_cache").glob("s16-*"))
    _inverted(cache)
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2
    line = one_error(err)
    assert "was changed after it was built" in line and f"delete the folder {cache}" in line
    assert not (out / "results.db").exists()


# ------------------------------------------------------------------ full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs mounted in ``tmp_path`` (root only; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a small tmpfs, which only root can mount here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_while_building_is_one_line_and_leaves_nothing(tmp_path, small_disk, capsys):
    from tests.helpers import cli, one_error

    root = tmp_path / "nih"
    write_nih(root, patients=40)  # ~80 images: 80 x 64 x 64 = 330 kB > 256 KiB
    code, _, err = cli(capsys, "data", "prepare", str(root), "--size", "64",
                       "--cache-dir", str(small_disk))
    assert code == 2
    line = one_error(err)
    assert f"no room for the prepared cache on {small_disk} (tmpfs, tmpfs)" in line, line
    assert re.search(rf"it needs 328 kB in {re.escape(str(small_disk))}, 2\d\d kB free", line)
    assert "(No space left on device); free space there" in line and "dataset.cache_dir" in line
    assert list(small_disk.iterdir()) == []  # the temporary build is removed
    with pytest.raises(CacheSpaceError):  # the library: an OSError, before any decoding
        prepare_cache(root, 64, cache_dir=small_disk, progress=False)


def test_full_disk_in_a_run_is_one_line(sim_root, tmp_path, small_disk, capsys):
    from tests.helpers import cli, one_error, tiny_suite, write_suite

    root = tmp_path / "sim"
    shutil.copytree(sim_root, root, ignore=shutil.ignore_patterns(".mlbench_cache"))
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(root, tmp_path / "out",
                                                           **{"dataset.image_size": 64}))
    code, _, err = cli(capsys, "run", path, "--no-progress",
                       "--set", f"dataset.cache_dir={small_disk}")
    assert code == 2
    assert "no room for the prepared cache on" in one_error(err)
    assert list(small_disk.iterdir()) == []


SLOW_BUILD = """
import sys, time
import mlbench.data.cache as cache
real = cache.load_resized
def slow(path, size):
    time.sleep(0.05)
    return real(path, size)
cache.load_resized = slow
from mlbench.cli import main
sys.exit(main(["data", "prepare", sys.argv[1], "--size", "16", "--cache-dir", sys.argv[2],
               "--workers", "2"]))
"""


def test_sigterm_ends_a_build_and_removes_it(tmp_path):
    root, caches = tmp_path / "nih", tmp_path / "caches"
    write_nih(root, patients=40)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(root), str(caches)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 120
        while not list(caches.glob(".tmp-*/images.npy")) and time.monotonic() < end:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # no hang: the build stops
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert list(caches.iterdir()) == [], err  # the temporary build is removed


# ------------------------------------------------------------------ scripts
UNGUARDED = """
from mlbench.data import ChestXray14
ds = ChestXray14({root!r}, "train", image_size=16, workers=2, cache_dir={caches!r})
print("images", len(ds), ds[0][0].shape)
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_an_unguarded_script_builds_a_dataset(tmp_path, how):
    root, caches = tmp_path / "nih", tmp_path / "caches"
    write_nih(root, patients=30)
    script = tmp_path / "quick.py"  # no `if __name__ == "__main__":`
    script.write_text(textwrap.dedent(UNGUARDED.format(root=str(root), caches=str(caches))))
    argv = [sys.executable, str(script)] if how == "file" else [sys.executable, "-"]
    done = subprocess.run(argv, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          input=script.read_text() if how == "stdin" else None,
                          capture_output=True, text=True, timeout=180)  # never a silent wait
    assert done.returncode == 0, done.stderr
    assert "images" in done.stdout and "torch.Size([1, 16, 16])" in done.stdout


# ------------------------------------------------------------------ split lists
def test_an_image_in_both_split_lists_is_named(nih):
    from mlbench.data import DatasetError
    from mlbench.data.release import ReleaseTables

    root, info = nih
    name = (root / "train_val_list.txt").read_text().split()[0]
    with open(root / "test_list.txt", "a") as f:
        f.write(name + "\n")
    with pytest.raises(DatasetError) as err:
        ReleaseTables(root)
    assert (f"1 image(s) are in both train_val_list.txt and test_list.txt, e.g. ['{name}']"
            in str(err.value))
    (root / "test_list.txt").write_text((root / "test_list.txt").read_text().replace(
        name + "\n", ""))
    twice = info["names"][-1]
    with open(root / "test_list.txt", "a") as f:
        f.write(twice + "\n")
    with pytest.raises(DatasetError, match=rf"test_list.txt lists 1 image\(s\) more than once, "
                                           rf"e.g. \['{twice}'\]"):
        ReleaseTables(root)
