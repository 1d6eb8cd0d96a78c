"""A tiny learnable multi-label image task for the engine tests."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mlbench.train import loader_kwargs


def make_task(n: int, seed: int, classes: int = 3, size: int = 16) -> TensorDataset:
    """Class c present -> a bright blob in the c-th horizontal band (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, classes, generator=g) < 0.4).float()
    x = torch.randn(n, 1, size, size, generator=g) * 0.8
    band = size // classes
    for c in range(classes):
        x[:, :, c * band:(c + 1) * band, 2:size - 2] += 1.5 * y[:, c].view(-1, 1, 1, 1)
    return TensorDataset(x, y)


@pytest.fixture(scope="session")
def task():
    return make_task(96, 0), make_task(64, 1)


def _loaders(train, val, seed=0, batch_size=16):
    return (DataLoader(train, batch_size=batch_size, shuffle=True, **loader_kwargs(seed)),
            DataLoader(val, batch_size=32))


@pytest.fixture(scope="session")
def loaders():
    """Function (train, val, seed) -> (shuffled seeded train loader, val loader)."""
    return _loaders
