"""Checkpoints of ``engine.fit``: the best weights (``best.pt``,
:func:`save_checkpoint` / :func:`load_checkpoint`) and the whole training state written
after every epoch to resume from (``last.pt``, :func:`save_training_state` /
:func:`load_training_state`). Both are written atomically (tmp file, fsync, rename) and
loaded weights-only.

A training state holds, besides the model and the optimizer, the ``state_dict()`` of a loss
with state under ``"loss"`` (AUC-M's a, b, α; hook positions as plain ints), only for such a
loss: the state of a stateless run is what it was before losses could have state, so its
old ``last.pt`` files still resume (the format number is unchanged)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def save_checkpoint(path: str | Path, model: nn.Module, **meta) -> None:
    """Write ``{"model": state_dict, **meta}`` atomically (tmp file + rename).

    Only tensors and plain Python values, so it loads with ``weights_only=True``.
    """
    _atomic_save({"model": model.state_dict(), **meta}, Path(path))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, map_location="cpu") -> dict:
    """Load a checkpoint weights-only; load its weights into ``model`` if given. Returns the dict."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if model is not None:
        model.load_state_dict(ckpt["model"])
    return ckpt


STATE_FORMAT = 1


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:  # on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_training_state(path: str | Path, state: dict) -> None:
    """Write a training state (:func:`fit`'s ``last_path``) atomically: a reader sees the
    previous complete file or the new one, never a partial one."""
    _atomic_save({"format": STATE_FORMAT, **state}, Path(path))


def load_training_state(path: str | Path) -> dict | None:
    """The training state at ``path`` (weights-only load), or None if there is none.

    Raises:
        ValueError: the file exists but is not a training state of this format.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: say which, on one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot read the training state {path} ({type(exc).__name__}: "
                         f"{first[:120]}); delete it to restart the run from epoch 0") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an mlbench training state (format {STATE_FORMAT}); "
                         "delete it to restart the run from epoch 0")
    return state
