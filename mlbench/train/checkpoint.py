"""Checkpoints of ``engine.fit``: the best weights (``best.pt``,
:func:`save_checkpoint` / :func:`load_checkpoint`) and the whole training state written
after every epoch to resume from (``last.pt``, :func:`save_training_state` /
:func:`load_training_state`). Both are written atomically (tmp file, fsync, rename,
``mlbench.files.atomic_path``) and loaded weights-only.

Both prove what they are: they carry an ``identity`` (the harness's: the run id and a
fingerprint of the resolved config) and a ``checksum``, the SHA-256 of every tensor and
value in them (:func:`state_checksum`). Loading checks the checksum, and the identity
against ``expect`` when given, and refuses a mismatch with a ``CheckpointError`` naming the
file and the fix (delete it to restart the run): a damaged or foreign state is never
trained on.

A training state holds, besides the model and the optimizer, the ``state_dict()`` of a loss
with state under ``"loss"`` (AUC-M's a, b, α; hook positions as plain ints), only for such a
loss. Format 2 (identity and checksum); a format-1 ``last.pt`` (without them) is refused:
nothing in it says which run it belongs to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from mlbench.files import atomic_path

STATE_FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as the one asked for (damaged, foreign, unreadable)."""


def state_checksum(obj) -> str:
    """SHA-256 (hex) of a checkpoint's content: every tensor's dtype, shape and bytes and
    every plain value, dict keys in sorted order (``"checksum"`` itself left out)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted((k for k in obj if k != "checksum"), key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def _save(obj: dict, path: Path) -> None:
    obj["checksum"] = state_checksum(obj)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load(path: Path, what: str, map_location="cpu") -> dict:
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign file: say which, on one line
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"cannot read the {what} {path} ({type(exc).__name__}: "
                              f"{first[:120]}); delete it to restart the run from epoch 0") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not an mlbench {what}; delete it to restart the run "
                              "from epoch 0")
    return obj


def _verify(obj: dict, path: Path, what: str, expect: dict | None) -> None:
    fix = "delete it to restart the run from epoch 0"
    if obj.get("checksum") is None:
        if expect is None:
            return
        raise CheckpointError(f"{path} has no checksum (written by an older mlbench): nothing "
                              f"proves which run it belongs to; {fix}")
    if state_checksum(obj) != obj["checksum"]:
        raise CheckpointError(f"{path} is damaged (its content does not match the checksum "
                              f"written with it); {fix}")
    if expect is None:
        return
    have = obj.get("identity") or {}
    for key, want in expect.items():
        if have.get(key) != want:
            raise CheckpointError(f"{path} belongs to another run ({key} {have.get(key)!r}, "
                                  f"this run's is {want!r}); {fix}")


def save_checkpoint(path: str | Path, model: nn.Module, *, identity: dict | None = None,
                    **meta) -> None:
    """Write ``{"model": state_dict, **meta, "identity", "checksum"}`` atomically.

    Only tensors and plain Python values, so it loads with ``weights_only=True``.
    """
    _save({"model": model.state_dict(), **meta, "identity": identity}, Path(path))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, map_location="cpu",
                    expect: dict | None = None) -> dict:
    """Load a checkpoint weights-only, check it (checksum; identity against ``expect``);
    load its weights into ``model`` if given. Returns the dict.

    Raises:
        CheckpointError: unreadable, damaged, or (``expect``) another run's.
    """
    path = Path(path)
    ckpt = _load(path, "checkpoint", map_location)
    _verify(ckpt, path, "checkpoint", expect)
    if model is not None:
        model.load_state_dict(ckpt["model"])
    return ckpt


def save_training_state(path: str | Path, state: dict, identity: dict | None = None) -> None:
    """Write a training state (:func:`fit`'s ``last_path``) atomically: a reader sees the
    previous complete file or the new one, never a partial one."""
    _save({"format": STATE_FORMAT, **state, "identity": identity}, Path(path))


def load_training_state(path: str | Path, expect: dict | None = None) -> dict | None:
    """The training state at ``path`` (weights-only load, checked), or None if there is none.

    Raises:
        CheckpointError (a ``ValueError``): the file is unreadable, not a training state of
            this format, damaged (checksum), or (``expect``) another run's.
    """
    path = Path(path)
    if not path.is_file():
        return None
    state = _load(path, "training state")
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not an mlbench training state of format "
                              f"{STATE_FORMAT} (it has {state.get('format')!r}); delete it to "
                              "restart the run from epoch 0")
    _verify(state, path, "training state", expect if expect is not None else {})
    return state
