"""Shared fixtures of the loss tests; every test taking ``loss_name`` runs for each registered loss."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import losses

_HERE = Path(__file__).parent


def _load(stem: str):
    """Import a sibling module under a unique name (pytest runs with --import-mode=importlib)."""
    name = f"_mlbench_tests_losses_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pytest_generate_tests(metafunc):
    if "loss_name" in metafunc.fixturenames:
        metafunc.parametrize("loss_name", losses.list_losses())
    if "extra_kwargs" in metafunc.fixturenames:  # (name, kwargs) from reference.EXTRA_KWARGS
        cases = [(n, kw) for n, kws in _load("reference").EXTRA_KWARGS.items() for kw in kws]
        ids = [f"{n}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for n, kw in cases]
        metafunc.parametrize("extra_kwargs", cases, ids=ids)


def stats_for(num_classes: int) -> dict:
    """Dataset statistics for C classes (distinct counts, so class weights differ)."""
    counts = torch.arange(num_classes, dtype=torch.int64) * 37 + 5
    return {"class_counts": counts, "num_samples": 1000 + 37 * num_classes}


def make_loss(name: str, num_classes: int, **kwargs) -> torch.nn.Module:
    return losses.create_loss(name, stats=stats_for(num_classes), **kwargs)


def call_fn(name: str, logits, targets, **kwargs):
    """The functional form, given the dataset statistics it needs and, for a loss with state,
    the state of a freshly built module (unless given)."""
    info = losses.get_loss_info(name)
    num_classes = logits.shape[-1] if logits.ndim else 1
    stats = stats_for(num_classes)
    if info.stateful:
        state = make_loss(name, num_classes).state_kwargs()
        extra = {key: value for key, value in state.items() if key not in kwargs}
    else:
        extra = {key: stats[key] for key in info.needs if key not in kwargs}
    return info.fn(logits, targets, **extra, **kwargs)


def make_batch(
    b: int,
    c: int,
    *,
    seed: int = 0,
    scale: float = 2.0,
    dtype=torch.float32,
    edge_rows: bool = True,
):
    """Random (B, C) logits and bool targets from a private generator (global RNG untouched).

    With ``edge_rows`` (and B >= 3) row 0 has no positives and row 1 only positives.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, generator=gen, dtype=torch.float64) * scale).to(dtype)
    targets = torch.rand(b, c, generator=gen) < 0.4
    targets[-1, 0] = True  # at least one positive in the batch
    if edge_rows and b >= 3:
        targets[0] = False
        targets[1] = True
    return logits, targets


class Helpers:
    stats_for = staticmethod(stats_for)
    make_loss = staticmethod(make_loss)
    call_fn = staticmethod(call_fn)
    make_batch = staticmethod(make_batch)


@pytest.fixture
def h():
    return Helpers


@pytest.fixture
def ref():
    return _load("reference")


@pytest.fixture
def info(loss_name):
    return losses.get_loss_info(loss_name)
