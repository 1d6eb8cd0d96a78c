"""Data problems are one line that points the right way (issue 15, item 6): the suite key to
set, CXR14-sim regenerated rather than re-downloaded, the file named; the dataset is left as
it was."""

from __future__ import annotations

import shutil

import pytest

from mlbench.layout import SIM_MARKER
from tests.helpers import cli, fingerprint, one_error, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def _copy(sim_root, dest, *, sim: bool):
    """A copy of the shared CXR14-sim (no cache); ``sim=False`` drops its marker, so it looks
    like a ChestX-ray14 release."""
    shutil.copytree(sim_root, dest, ignore=shutil.ignore_patterns(".mlbench_cache"))
    if not sim:
        (dest / SIM_MARKER).unlink()
    return dest


def _run(capsys, tmp_path, root, *sets) -> str:
    """``run`` on ``root`` as a real-data suite; asserts exit 2, one line, data untouched."""
    out = tmp_path / "out"
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(root, out, **{"dataset.sim": None}))
    before = _data(root)
    code, _, err = cli(capsys, "run", path, "--no-progress", *sets)
    assert code == 2, err
    assert _data(root) == before
    return one_error(err)


def _data(root):
    return {k: v for k, v in fingerprint(root).items() if not k.startswith(".mlbench_cache")}


def _images(root, names=None):
    return sorted((root / "images").glob("*.png")) if names is None else \
        [root / "images" / n for n in names]


def test_missing_images_name_the_suite_key(sim_root, tmp_path, capsys):
    root = _copy(sim_root, tmp_path / "nih", sim=False)
    gone = _images(root)[:3]
    for p in gone:
        p.unlink()
    line = _run(capsys, tmp_path, root)
    assert "not found under" in line and "Unpack all 12 archives of the NIH release" in line
    assert "`dataset.missing: skip` in the suite (--set dataset.missing=skip" in line
    assert "pass missing='skip'" not in line


def test_missing_images_of_a_sim_say_regenerate(sim_root, tmp_path, capsys):
    root = _copy(sim_root, tmp_path / "sim", sim=True)
    _images(root)[0].unlink()
    line = _run(capsys, tmp_path, root)
    assert "is CXR14-sim" in line and "delete that folder and generate it again" in line
    assert "NIH" not in line


def test_skip_that_empties_a_split_blames_the_missing_images_not_val_fraction(sim_root,
                                                                             tmp_path, capsys):
    root = _copy(sim_root, tmp_path / "nih", sim=False)
    test = (root / "test_list.txt").read_text().split()
    for p in _images(root, test):
        p.unlink()
    line = _run(capsys, tmp_path, root, "--set", "dataset.missing=skip")
    assert f"all {len(test)} listed image(s) of the `test` split are missing" in line
    assert "dataset.missing: skip" in line and "val_fraction" not in line


def test_corrupt_png_in_a_sim_says_regenerate_not_nih(sim_root, tmp_path, capsys):
    root = _copy(sim_root, tmp_path / "sim", sim=True)
    bad = _images(root)[5]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    line = _run(capsys, tmp_path, root)
    assert "could not be decoded" in line and bad.name in line
    assert "is CXR14-sim" in line and "generate it again" in line
    assert "NIH" not in line and "Re-extract" not in line


def test_corrupt_png_in_a_release_says_re_extract_or_skip_with_the_suite_key(sim_root,
                                                                             tmp_path, capsys):
    root = _copy(sim_root, tmp_path / "nih", sim=False)
    _images(root)[5].write_bytes(b"broken")
    line = _run(capsys, tmp_path, root)
    assert "Re-extract them from the NIH archives" in line
    assert "`dataset.missing: skip`" in line


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00\x01garbage\n"])
def test_an_empty_or_binary_label_table_is_named(sim_root, tmp_path, capsys, content):
    root = _copy(sim_root, tmp_path / "nih", sim=False)
    table = root / "Data_Entry_2017_v2020.csv"
    table.write_bytes(content)
    line = _run(capsys, tmp_path, root)
    assert str(table) in line and "No columns to parse" not in line
    assert "NIH release" in line


def test_a_failed_set_up_leaves_no_pending_runs_behind(sim_root, tmp_path, capsys):
    # the data are made ready before the runs are registered: no results.db with pending
    # rows that a later `status` or leaderboard would show as work to do
    root = _copy(sim_root, tmp_path / "nih", sim=False)
    _images(root)[0].unlink()
    _run(capsys, tmp_path, root)
    assert not (tmp_path / "out" / "results.db").exists()
