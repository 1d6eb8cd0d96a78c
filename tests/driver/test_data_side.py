"""The driver's data side (issue 24, items 6-9): results.db files made with path-based run
ids keep their runs, a sim folder is a sim wherever it is given, a read-only dataset root
(EROFS) names dataset.cache_dir, and a suite run from an unguarded script fails at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from mlbench.layout import SIM_MARKER
from tests.helpers import REPO, cli, fill, one_error, tiny_suite, trained, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def _release(sim_root, dest):
    shutil.copytree(sim_root, dest, ignore=shutil.ignore_patterns(".mlbench_cache"))
    (dest / SIM_MARKER).unlink()
    return dest


def test_a_results_db_with_path_based_ids_is_matched(sim_root, tmp_path, capsys):
    from mlbench.db import ResultsDB
    from mlbench.suite import Run, load_suite, path_run_id

    root = _release(sim_root, tmp_path / "nih")
    out = tmp_path / "out"
    cfg = tiny_suite(root, out, **{"dataset.sim": None})
    suite = load_suite(cfg, env={})
    old = [Run(path_run_id(r.config), r.config) for r in suite.runs]
    assert {r.id for r in old}.isdisjoint(r.id for r in suite.runs)  # the ids did change
    with ResultsDB(out) as db:  # as a results folder made before issue 24 holds them
        fill(db, old, lambda loss: 1.0)
    code, _, err = cli(capsys, "run", write_suite(tmp_path / "s.yaml", cfg), "--no-progress")
    assert code == 0, err
    assert trained(out) == {r.id: 1 for r in old}  # nothing trained again, no new ids


def test_a_sim_folder_given_as_root_is_a_sim(sim_root, tmp_path):
    from mlbench.db import ResultsDB
    from mlbench.driver import dataset_meta
    from mlbench.leaderboard import leaderboard
    from mlbench.suite import load_suite

    root = tmp_path / "made-by-data-sim"
    shutil.copytree(sim_root, root, ignore=shutil.ignore_patterns(".mlbench_cache"))
    suite = load_suite(tiny_suite(root, tmp_path / "out", **{"dataset.sim": None}), env={})
    meta = dataset_meta(suite.dataset)
    assert meta["kind"] == "sim" and meta["sim"]["images"] > 0
    real = _release(sim_root, tmp_path / "nih")
    assert dataset_meta({**suite.dataset, "root": str(real)})["kind"] == "real"
    # a results.db made before: "real" stored for the sim folder; no NIH rows all the same
    with ResultsDB(tmp_path / "out") as db:
        fill(db, suite.runs, lambda loss: 1.0)
        db.set_meta("dataset", {**meta, "kind": "real"})
    assert "published (context)" not in leaderboard(tmp_path / "out", per_class=False)


@pytest.fixture
def read_only_root(sim_root, tmp_path):
    """A copy of the CXR14-sim (no cache) on a tmpfs remounted read-only (root only)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only file system needs a mount, which only root can make here")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    shutil.copytree(sim_root, mnt / "sim", ignore=shutil.ignore_patterns(".mlbench_cache"))
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    yield mnt / "sim"
    subprocess.run(["umount", str(mnt)], check=False)


def test_a_read_only_dataset_root_names_cache_dir(read_only_root, tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", tiny_suite(read_only_root, tmp_path / "out"))
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2
    line = one_error(err)
    assert "Read-only file system" in line, line
    assert f"cannot write the prepared-image cache in {read_only_root} (dataset.root)" in line
    assert "--set dataset.cache_dir=/path" in line


UNGUARDED = """
from mlbench.driver import run_suite
from mlbench.suite import load_suite
suite = load_suite({suite!r})
print(run_suite(suite, suite.runs, workers=2, progress=False))
"""


def test_a_suite_run_from_an_unguarded_script_fails_at_once(sim_root, tmp_path):
    root = tmp_path / "sim"
    shutil.copytree(sim_root, root)
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(root, tmp_path / "out", workers=2))
    script = tmp_path / "quick.py"
    script.write_text(textwrap.dedent(UNGUARDED.format(suite=suite)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180,  # never a silent wait
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert f"{script} runs the suite from its top level (line 5) without an " in last, last
    assert 'put the script\'s code under that guard' in last


def test_shuffled_labels_permute_the_label_rows_over_the_images():
    """`labels: shuffled` (a negative control): image i keeps its pixels and gets the labels
    of image perm[i]; the class counts (the loss factory's stats) are the split's own."""
    import numpy as np
    import torch

    from mlbench.driver.worker import ShuffledLabels

    class Split:
        labels = (np.arange(40)[:, None] % np.arange(2, 16)[None, :] == 0).astype(np.float32)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return torch.full((1, 2, 2), float(i)), torch.from_numpy(self.labels[i].copy())

        def stats(self):
            return {"class_counts": self.labels.sum(0).astype(np.int64), "num_samples": 40}

    base = Split()
    a, b = ShuffledLabels(base, 3), ShuffledLabels(base, 3)
    np.testing.assert_array_equal(a.perm, b.perm)  # seeded
    assert sorted(a.perm) == list(range(40)) and (a.perm != np.arange(40)).mean() > 0.8
    for i in range(40):
        img, label = a[i]
        assert img[0, 0, 0].item() == i and label.dtype == torch.float32
        np.testing.assert_array_equal(label.numpy(), base.labels[a.perm[i]])
    assert a.stats()["num_samples"] == 40
    np.testing.assert_array_equal(a.labels.sum(0), base.labels.sum(0))
    assert not np.array_equal(ShuffledLabels(base, 4).perm, a.perm)
