"""Seeds and determinism (SPEC section 5: a CPU run repeated gives the same metrics bit for bit).

Library code never changes global state behind the caller's back. Two ways in:

* :func:`deterministic` -- a context manager for one run: seeds Python, NumPy and torch,
  turns on ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN
  determinism, and restores all of it (RNG states included) on exit. The runner wraps each
  run in it.
* :func:`seed_everything` -- the explicit, global, one-way version for scripts.

DataLoaders get their own seeded ``torch.Generator`` (shuffling) and :func:`worker_init_fn`
(per-worker NumPy / ``random`` seeds derived from torch's per-worker seed), via
:func:`loader_kwargs`.

What makes repeated CPU runs bit-identical: the same seed before the model is built, the
same data order (seeded generator), and the same number of intra-op threads (results of
reductions can depend on the thread count, so compare runs on one machine setting).
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["deterministic", "loader_kwargs", "make_generator", "seed_everything", "worker_init_fn"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and all CUDA devices). Global."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for DataLoader shuffling and sampling."""
    return torch.Generator().manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed ``random`` and NumPy in each worker.

    torch seeds each worker as ``base_seed + worker_id`` where ``base_seed`` comes from the
    loader's generator; deriving the other RNGs from it makes augmentations reproducible.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def loader_kwargs(seed: int) -> dict:
    """Keyword arguments for ``torch.utils.data.DataLoader`` that fix its randomness."""
    return {"generator": make_generator(seed), "worker_init_fn": worker_init_fn}


@contextlib.contextmanager
def deterministic(seed: int, *, algorithms: bool = True):
    """Seed everything and use deterministic algorithms inside the block; restore on exit.

    Args:
        seed: the run's seed.
        algorithms: also call ``torch.use_deterministic_algorithms(True, warn_only=True)``
            (ops without a deterministic implementation warn instead of failing) and set
            cuDNN to deterministic, non-benchmark mode. ``CUBLAS_WORKSPACE_CONFIG`` is set
            for CUDA if unset (required by deterministic cuBLAS).
    """
    saved = {
        "random": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "det": torch.are_deterministic_algorithms_enabled(),
        "det_warn": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    try:
        seed_everything(seed)
        if algorithms:
            if saved["cublas"] is None:
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        random.setstate(saved["random"])
        np.random.set_state(saved["numpy"])
        torch.set_rng_state(saved["torch"])
        if saved["cuda"] is not None:
            torch.cuda.set_rng_state_all(saved["cuda"])
        torch.use_deterministic_algorithms(saved["det"], warn_only=saved["det_warn"])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved["cudnn"]
        if saved["cublas"] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
