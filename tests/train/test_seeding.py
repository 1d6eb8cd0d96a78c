"""Seeding helpers restore global state and make loaders reproducible."""

import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from mlbench.train import deterministic, loader_kwargs, seed_everything


def test_deterministic_restores_global_state():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    with deterministic(7):
        assert torch.are_deterministic_algorithms_enabled()
        a = (random.random(), np.random.rand(), torch.rand(1).item())
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.are_deterministic_algorithms_enabled() == det
    with deterministic(7):
        b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b


def test_seed_everything_and_loader_order():
    seed_everything(3)
    x = torch.rand(1)
    seed_everything(3)
    assert torch.equal(x, torch.rand(1))
    data = list(range(20))
    order = lambda s: list(DataLoader(data, batch_size=20, shuffle=True, **loader_kwargs(s)))[0]
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
