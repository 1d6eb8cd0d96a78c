"""``train.augment`` as a mapping: validation, canonical form (run ids), tuned (the pipeline it
builds: tests/data/test_transforms.py)."""

from __future__ import annotations

import pytest

from mlbench.suite import SuiteError, load_suite
from mlbench.suite.schema import AUGMENT_TRUE, normalise_augment
from tests.helpers import TUNED, tiny_suite

RECIPE = {"rotate": 7, "translate": 0.05, "scale": [0.92, 1.08], "brightness": 0.15,
          "contrast": 0.15}


def _ids(tmp_path, augment):
    suite = tiny_suite(None, tmp_path / "out", TUNED, {"grid.loss": ["bce"]}, tune={},
                       seeds=[0])
    suite["train"]["augment"] = augment
    s = load_suite(suite, train_keys=False)
    return [r.id for r in s.runs], s.runs[0].config["train"]["augment"]


def test_canonical_form_and_run_ids(tmp_path):
    ids_true, stored = _ids(tmp_path, True)
    assert stored is True
    assert _ids(tmp_path, RECIPE) == (ids_true, True)  # the default recipe written out
    ids_false, stored = _ids(tmp_path, False)
    assert stored is False and _ids(tmp_path, {}) == (ids_false, False)
    flip, stored = _ids(tmp_path, {"hflip": 0.5})
    assert stored["hflip"] == 0.5 and stored["rotate"] == 0.0
    assert _ids(tmp_path, {"hflip": True, "rotate": 0})[0] == flip
    assert len({ids_true[0], ids_false[0], flip[0]}) == 3
    assert normalise_augment({**AUGMENT_TRUE}) is True


@pytest.mark.parametrize("augment, match", [
    ({"hflip": 1.5}, r"`train.augment.hflip` is a probability"),
    ({"rotate": -1}, r"`train.augment.rotate` must be >= 0"),
    ({"scale": [1.1, 0.9]}, r"`train.augment.scale` must be \[lo, hi\]"),
    ({"resized_crop": [0.5, 1.2]}, r"`train.augment.resized_crop` must be \[lo, hi\]"),
    ({"flip": 0.5}, r"unknown key `train.augment.flip`"),
    ({"randaugment": {"magnitude": 31}}, r"`train.augment.randaugment.magnitude` must be <= 30"),
    ("yes", r"`train.augment` must be"),
])
def test_bad_mapping_names_the_key(tmp_path, augment, match):
    with pytest.raises(SuiteError, match=match):
        _ids(tmp_path, augment)



def test_augment_can_be_tuned(tmp_path):
    suite = load_suite(tiny_suite(None, tmp_path / "out", TUNED, {"grid.loss": ["bce"]}, tune={
        "train": {"augment": [True, {"hflip": 0.5}]}}), train_keys=False)
    (cell,) = suite.plan.cells
    got = [s.runs[0].config["train"]["augment"] for s in cell.settings]
    assert got[0] is True and got[1]["hflip"] == 0.5
