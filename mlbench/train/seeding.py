"""Seeds and determinism (SPEC section 5: a CPU run repeated gives the same metrics bit for bit).

Library code never changes global state behind the caller's back. Two ways in:

* :func:`deterministic` -- a context manager for one run: seeds Python, NumPy and torch,
  turns on ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN
  determinism, and restores all of it (RNG states included) on exit. The one-run worker wraps each
  run in it.
* :func:`seed_everything` -- the explicit, global, one-way version for scripts.

DataLoaders get their own seeded ``torch.Generator`` (shuffling) and :func:`worker_init_fn`
(per-worker NumPy / ``random`` seeds derived from torch's per-worker seed), via
:func:`loader_kwargs`.

Epochs: :func:`reseed_loader` seeds a loader's generator from ``(seed, epoch)`` before each
epoch, so the data order (and DataLoader worker seeds) of epoch ``e`` depends on the seed and
``e`` only -- a run resumed at epoch ``e`` from a checkpoint sees the same batches as an
uninterrupted one. :func:`get_rng_state` / :func:`set_rng_state` capture and restore the
global RNGs (Python, NumPy, torch CPU and CUDA) in a form ``torch.load(weights_only=True)``
reads, for checkpoints.

What makes repeated CPU runs bit-identical: the same seed before the model is built, the
same data order (seeded generator), and the same number of intra-op threads (results of
reductions can depend on the thread count; the harness fixes it per run with
``train.threads``).
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = [
    "deterministic",
    "epoch_seed",
    "get_rng_state",
    "loader_kwargs",
    "make_generator",
    "reseed_loader",
    "seed_everything",
    "set_rng_state",
    "worker_init_fn",
]


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


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch)`` (NumPy ``SeedSequence``: well mixed)."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def reseed_loader(loader, seed: int, epoch: int) -> None:
    """Seed ``loader.generator`` for ``epoch``: its shuffling and worker seeds then depend on
    ``(seed, epoch)`` only, not on the epochs drawn before (resume gives the same batches)."""
    gen = getattr(loader, "generator", None)
    if gen is None:
        raise ValueError("reseed_loader needs a DataLoader made with a generator "
                         "(mlbench.train.loader_kwargs)")
    gen.manual_seed(epoch_seed(seed, epoch))


class EpochLoader:
    """A train loader for ``fit``: reseeded per epoch from ``(seed, epoch)``
    (:func:`reseed_loader`), so a resumed run sees the same batches; ``on_batch`` (e.g. a
    progress bar's update) is called after each batch."""

    def __init__(self, loader, seed: int, on_batch=None):
        self.loader, self.seed, self.on_batch = loader, seed, on_batch

    def set_epoch(self, epoch: int) -> None:
        reseed_loader(self.loader, self.seed, epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield batch
            if self.on_batch is not None:
                self.on_batch()


def get_rng_state() -> dict:
    """The global RNG states (Python, NumPy, torch CPU, every CUDA device) as tensors and
    plain values, so a checkpoint holding them loads with ``weights_only=True``."""
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(py_state), gauss],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` captured (CUDA states only where devices exist)."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


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
            for CUDA if unset (required by deterministic cuBLAS). ``False`` turns them off
            and turns cuDNN autotuning on (``train.deterministic: false``: faster on GPU,
            results can vary slightly between repeats).
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
        else:  # fast kernels: cuDNN autotuning, non-deterministic atomics allowed
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.deterministic = False
            torch.backends.cudnn.benchmark = True
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
