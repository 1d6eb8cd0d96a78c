from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from mlbench.data import build_transforms


def _kinds(t):
    return {type(s) for s in t.transforms}


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
