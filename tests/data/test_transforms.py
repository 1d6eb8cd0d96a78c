from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from mlbench.data import build_transforms
from mlbench.suite.schema import AUGMENT_TRUE, normalise_augment


def _kinds(t):
    return {type(s) for s in t.transforms}


def _steps(t):
    return [type(s) for s in t.transforms]


@pytest.mark.parametrize("train", [True, False])
def test_uint8_in_float32_out(train):
    x = torch.randint(0, 256, (1, 80, 80), dtype=torch.uint8)
    y = build_transforms(train, 48, mean=0.5, std=0.25)(x)
    assert y.dtype == torch.float32 and y.shape == (1, 48, 48)


def test_normalisation_matches_backbone_stats():
    x = torch.full((1, 32, 32), 128, dtype=torch.uint8)
    y = build_transforms(False, 32, mean=128 / 255, std=0.2)(x)
    assert torch.allclose(y, torch.zeros_like(y), atol=1e-6)
    z = build_transforms(False, 32, mean=0.0, std=0.5)(
        torch.full((1, 32, 32), 255, dtype=torch.uint8)
    )
    assert torch.allclose(z, torch.full_like(z, 2.0))


def test_no_horizontal_flip_by_default():
    assert v2.RandomHorizontalFlip not in _kinds(build_transforms(True, 32, 0.5, 0.25))
    assert v2.RandomHorizontalFlip in _kinds(build_transforms(True, 32, 0.5, 0.25, hflip=True))


def test_train_augments_eval_is_deterministic():
    x = torch.randint(0, 256, (1, 64, 64), dtype=torch.uint8)
    ev = build_transforms(False, 64, 0.5, 0.25)
    assert torch.equal(ev(x), ev(x))
    torch.manual_seed(0)
    tr = build_transforms(True, 64, 0.5, 0.25)
    assert not torch.equal(tr(x), tr(x))
    assert _kinds(build_transforms(True, 64, 0.5, 0.25, augment=False)) == _kinds(ev)


def test_bad_std():
    with pytest.raises(ValueError, match="std"):
        build_transforms(False, 32, 0.5, 0.0)


def test_pipeline_of_a_mapping():
    full = {"hflip": 0.5, "rotate": 5, "translate": 0.1, "scale": [0.9, 1.1],
            "resized_crop": [0.5, 1.0], "brightness": 0.1, "contrast": 0.2,
            "randaugment": {"num_ops": 2, "magnitude": 9}}
    t = build_transforms(True, 32, 0.5, 0.25, augment=normalise_augment(full))
    assert _steps(t) == [v2.RandomResizedCrop, v2.RandomAffine, v2.ColorJitter, v2.RandAugment,
                         v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize]
    x = torch.randint(0, 256, (1, 48, 48), dtype=torch.uint8)
    torch.manual_seed(0)
    y = t(x)
    assert y.shape == (1, 32, 32) and y.dtype == torch.float32
    flip = build_transforms(True, 32, 0.5, 0.25, augment=normalise_augment({"hflip": 1.0}))
    assert torch.equal(flip(x), torch.flip(build_transforms(False, 32, 0.5, 0.25)(x), dims=[-1]))
    # evaluation never augments; `true` is the same pipeline as its mapping, step for step
    assert _steps(build_transforms(False, 32, 0.5, 0.25, augment=full)) == [
        v2.Resize, v2.CenterCrop, v2.ToDtype, v2.Normalize]
    a, b = (build_transforms(True, 32, 0.5, 0.25, augment=v) for v in (True, AUGMENT_TRUE))
    torch.manual_seed(1)
    ya = a(x)
    torch.manual_seed(1)
    assert torch.equal(ya, b(x))
