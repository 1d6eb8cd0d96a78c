"""Pretrained backbone weights for offline machines: where timm fetches them, whether they are
in the local cache, and fetching them ahead (``python -m mlbench prefetch``).

timm takes a backbone's pretrained weights from the Hugging Face hub when its pretrained
config names a hub repository (``model.safetensors``, else ``pytorch_model.bin``, in the
standard cache: ``$HF_HOME/hub``), else from a URL into torch's hub cache. A compute node
without internet sets ``HF_HUB_OFFLINE=1`` and reads the cache a login node filled, or is
given the files themselves (``model.weights``: backbone -> file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

# timm's order: the safetensors alternative of its default file first.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class HubWeights:
    """Where a backbone's pretrained weights come from, and where they are cached here.

    ``source``: ``"hf-hub"`` (``location`` a repo id), ``"url"`` or ``"none"`` (timm has no
    pretrained weights for it); ``cached``: the local file, or None when not cached.
    """

    backbone: str
    source: str
    location: str
    cached: Path | None


def hub_weights(backbone: str) -> HubWeights:
    """Where timm would take ``backbone``'s pretrained weights from, and the cached file."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    url = getattr(cfg, "url", None) if cfg is not None else None
    if repo:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = repo.partition("@")
        names = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else HUB_FILES
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, revision=revision or None)
            if isinstance(hit, str):
                return HubWeights(backbone, "hf-hub", repo, Path(hit))
        return HubWeights(backbone, "hf-hub", repo, None)
    if url:
        file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        return HubWeights(backbone, "url", url, file if file.is_file() else None)
    return HubWeights(backbone, "none", "", None)


def prefetch(backbone: str, folder: Path | None = None) -> Path:
    """Fetch ``backbone``'s pretrained weights into the standard cache (timm's own download)
    and return the cached file; with ``folder``, also save the backbone's state dict there
    as ``BACKBONE.pth`` (a file ``model.weights`` can name) and return that.

    Raises:
        ValueError: timm has no pretrained weights for ``backbone``.
        RuntimeError: the download failed (no internet, say), naming the backbone.
    """
    where = hub_weights(backbone)
    if where.source == "none":
        raise ValueError(f"backbone {backbone!r} has no pretrained weights in timm; set "
                         "model.pretrained: false or give a model.weights file")
    try:
        net = timm.create_model(backbone, pretrained=True, num_classes=0)
    except Exception as e:  # hub/network errors come in many types (OSError, HF, requests...)
        raise RuntimeError(f"could not fetch the pretrained weights of {backbone!r} from "
                           f"{where.location} ({type(e).__name__}: {e}); run this on a "
                           "machine with internet") from e
    if folder is None:
        cached = hub_weights(backbone).cached
        if cached is None:
            raise RuntimeError(f"the weights of {backbone!r} loaded but are not in the cache "
                               f"where timm keeps them ({where.location})")
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{backbone}.pth"
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, file)
    return file
