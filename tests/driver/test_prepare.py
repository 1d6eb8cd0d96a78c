"""The driver's data preparation (no training): the sim folder guard, the splits, the
prepared cache's folder."""

from __future__ import annotations

import json

import pytest

from mlbench.driver import prepare_data
from mlbench.layout import SIM_MARKER


def test_sim_folder_made_with_other_parameters_is_refused(tmp_path):
    root = tmp_path / "sim"
    root.mkdir()
    (root / "test_list.txt").write_text("")
    (root / SIM_MARKER).write_text(json.dumps({"images": 10, "size": 32, "seed": 0}))
    ds = {"root": str(root), "sim": {"images": 20, "size": 32, "seed": 0}, "image_size": 32}
    with pytest.raises(RuntimeError, match="delete .* or set dataset.root"):
        prepare_data(ds, progress=False)


def test_empty_validation_split_is_one_clear_set_up_error(tmp_path):
    # val_fraction 0 passes the suite schema; without this check every run failed later
    # with torch.cat's "expected a non-empty list of Tensors" from the validation pass.
    ds = {"root": str(tmp_path / "sim"), "sim": {"images": 40, "size": 16, "seed": 0},
          "image_size": 16, "val_fraction": 0.0, "split_seed": 0, "view": "all",
          "missing": "error"}
    with pytest.raises(ValueError, match=r"`val` split .* is empty.*dataset.val_fraction"):
        prepare_data(ds, progress=False)






def test_sim_suite_pointed_at_a_folder_of_other_data_is_refused(tmp_path):
    # with `sim` still set, a real-data folder was trained on, labelled sim, ids ignoring it
    root = tmp_path / "nih"
    root.mkdir()
    (root / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\n")
    (root / "test_list.txt").write_text("")
    ds = {"root": str(root), "sim": {"images": 20, "size": 32, "seed": 0}, "image_size": 32}
    with pytest.raises(ValueError) as err:
        prepare_data(ds, progress=False)
    msg = str(err.value)
    assert "`dataset.root`" in msg and "`dataset.sim`" in msg and str(root) in msg
    assert "--set dataset.sim=null" in msg and "empty or new folder" in msg
    assert sorted(p.name for p in root.iterdir()) == ["Data_Entry_2017.csv", "test_list.txt"]



def test_cache_dir_keeps_the_dataset_folder_untouched(tmp_path):
    """dataset.cache_dir: the prepared cache goes there (a read-only ROOT stays as it is) and
    the splits open from it."""
    from mlbench.driver import Datasets

    root, cache = tmp_path / "sim", tmp_path / "cache"
    ds = {"root": str(root), "sim": {"images": 40, "size": 16, "seed": 0}, "image_size": 16,
          "val_fraction": 0.25, "split_seed": 0, "view": "all", "missing": "error",
          "cache_dir": str(cache)}
    prepare_data(ds, progress=False)
    assert not (root / ".mlbench_cache").exists()
    assert any(cache.iterdir())
    splits = Datasets.open(ds)
    assert sum(len(s) for s in splits.values()) == 40
    assert splits["train"][0][0].shape[-1] == 16


def test_unwritable_cache_is_one_error_naming_cache_dir(tmp_path, monkeypatch):
    import mlbench.data

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mlbench.data, "prepare_cache", refuse)
    ds = {"root": str(tmp_path / "sim"), "sim": {"images": 20, "size": 16, "seed": 0},
          "image_size": 16}
    with pytest.raises(PermissionError, match=r"sim \(dataset.root\).*--set dataset.cache_dir="):
        prepare_data(ds, progress=False)
    ds["cache_dir"] = str(tmp_path / "ro")
    with pytest.raises(PermissionError, match=r"in dataset.cache_dir: Permission denied"):
        prepare_data(ds, progress=False)
