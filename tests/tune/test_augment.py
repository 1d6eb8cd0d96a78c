"""``train.augment`` as a mapping: validation, canonical form (run ids), the pipeline."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from mlbench.data import build_transforms
from mlbench.suite import SuiteError, load_suite
from mlbench.suite.schema import AUGMENT_TRUE, normalise_augment

from .conftest import tuned_suite

RECIPE = {"rotate": 7, "translate": 0.05, "scale": [0.92, 1.08], "brightness": 0.15,
          "contrast": 0.15}


def _ids(tmp_path, augment):
    suite = tuned_suite(tmp_path / "out", tune={}, losses=("bce",), seeds=[0])
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


def _kinds(t):
    return [type(s) for s in t.transforms]


def test_pipeline_of_a_mapping():
    full = {"hflip": 0.5, "rotate": 5, "translate": 0.1, "scale": [0.9, 1.1],
            "resized_crop": [0.5, 1.0], "brightness": 0.1, "contrast": 0.2,
            "randaugment": {"num_ops": 2, "magnitude": 9}}
    t = build_transforms(True, 32, 0.5, 0.25, augment=normalise_augment(full))
    assert _kinds(t) == [v2.RandomResizedCrop, v2.RandomAffine, v2.ColorJitter, v2.RandAugment,
                         v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize]
    x = torch.randint(0, 256, (1, 48, 48), dtype=torch.uint8)
    torch.manual_seed(0)
    y = t(x)
    assert y.shape == (1, 32, 32) and y.dtype == torch.float32
    flip = build_transforms(True, 32, 0.5, 0.25, augment=normalise_augment({"hflip": 1.0}))
    assert torch.equal(flip(x), torch.flip(build_transforms(False, 32, 0.5, 0.25)(x), dims=[-1]))
    # evaluation never augments; `true` is the same pipeline as its mapping, step for step
    assert _kinds(build_transforms(False, 32, 0.5, 0.25, augment=full)) == [
        v2.Resize, v2.CenterCrop, v2.ToDtype, v2.Normalize]
    a, b = (build_transforms(True, 32, 0.5, 0.25, augment=v) for v in (True, AUGMENT_TRUE))
    torch.manual_seed(1)
    ya = a(x)
    torch.manual_seed(1)
    assert torch.equal(ya, b(x))


def test_augment_can_be_tuned(tmp_path):
    suite = load_suite(tuned_suite(tmp_path / "out", losses=("bce",), tune={
        "train": {"augment": [True, {"hflip": 0.5}]}}), train_keys=False)
    (cell,) = suite.plan.cells
    got = [s.runs[0].config["train"]["augment"] for s in cell.settings]
    assert got[0] is True and got[1]["hflip"] == 0.5
