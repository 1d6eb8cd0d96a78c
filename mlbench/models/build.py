"""timm backbone + registered head = a grayscale multi-label classifier."""

from __future__ import annotations

import difflib
from pathlib import Path

import timm
import torch
from torch import nn

from .heads import create_head

__all__ = ["ChestXrayModel", "build_model"]


class ChestXrayModel(nn.Module):
    """Backbone feature map -> head. Input (B, 1, H, W) grayscale, output (B, C) logits.

    Attributes:
        backbone: the timm model (``num_classes=0, global_pool=""``).
        head: the registered head.
        norm_mean, norm_std: scalar grayscale normalisation (the backbone's pretrained
            RGB mean/std averaged) for :func:`mlbench.data.build_transforms`.
        replicate: the grayscale input is repeated to 3 channels before the backbone.
        config: the arguments ``build_model`` was called with (for the run record).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, replicate: bool, config: dict):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.replicate = replicate
        self.config = config
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", (0.5,)), cfg.get("std", (0.5,))
        self.norm_mean = float(sum(mean) / len(mean))
        self.norm_std = float(sum(std) / len(std))
        self.num_classes = config["num_classes"]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> spatial feature map (B, F, h, w), whatever the backbone's layout."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"Expected grayscale input (B, 1, H, W) but got {tuple(x.shape)}")
        if self.replicate:
            x = x.expand(-1, 3, -1, -1)
        f = self.backbone.forward_features(x)
        if f.ndim == 3:  # ViT-style tokens (B, N, F): drop class/register tokens, make a grid
            f = f[:, getattr(self.backbone, "num_prefix_tokens", 0):]
            n = f.shape[1]
            side = int(round(n**0.5))
            shape = (side, side) if side * side == n else (n, 1)
            f = f.transpose(1, 2).reshape(f.shape[0], f.shape[2], *shape)
        elif getattr(self.backbone, "output_fmt", "NCHW") == "NHWC":  # e.g. Swin
            f = f.permute(0, 3, 1, 2)
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def check_backbone(name: str) -> None:
    """Raise ``ValueError`` for a name timm does not know, listing the close matches."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(
            f"Unknown timm backbone {name!r}; close matches: {close} (see timm.list_models())"
        )


def _create_backbone(name: str, pretrained: bool, in_chans: int, file: Path | None,
                     extra: dict) -> nn.Module:
    fixed = {"num_classes", "global_pool", "in_chans", "pretrained", "pretrained_cfg_overlay"}
    bad = sorted(fixed & set(extra))
    if bad:
        raise ValueError(f"`backbone_kwargs` may not set {bad}: build_model sets them")
    kwargs = dict(extra, num_classes=0, global_pool="", in_chans=in_chans)
    if file is not None:  # timm loads the file weights-only, drops the classifier, adapts in_chans
        kwargs["pretrained_cfg_overlay"] = dict(file=str(file))
    try:
        return timm.create_model(name, pretrained=pretrained or file is not None, **kwargs)
    except Exception as e:  # hub/network errors come in many types (OSError, HF, requests...)
        if not pretrained or file is not None:
            raise
        raise RuntimeError(
            f"Could not load pretrained weights for backbone {name!r} ({type(e).__name__}: {e}). "
            "Offline? Set `pretrained: false`, or pass a local weights file "
            "(`weights: path/to/backbone.pth`)."
        ) from e


def _unwrap_state(obj) -> dict:
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def build_model(
    backbone: str,
    head: str,
    num_classes: int = 14,
    pretrained: bool = False,
    in_chans: int = 1,
    weights: str | Path | None = None,
    head_kwargs: dict | None = None,
    backbone_kwargs: dict | None = None,
) -> ChestXrayModel:
    """Build a grayscale multi-label classifier from a timm backbone and a registered head.

    Args:
        backbone: any timm model name (``timm.list_models()``).
        head: a registered head name (:func:`mlbench.models.list_heads`).
        num_classes: number of logits C.
        pretrained: load the backbone's pretrained weights from the hub.
        in_chans: 1 -- the backbone takes 1 channel (timm adapts a pretrained first conv by
            summing its RGB filters); 3 -- the grayscale input is replicated to 3 channels.
        weights: a local file loaded weights-only: either a full ``ChestXrayModel`` state
            dict (keys ``backbone.*`` / ``head.*``, or an engine checkpoint) or a backbone
            state dict such as a downloaded timm checkpoint (classifier dropped, first conv
            adapted to ``in_chans``).
        head_kwargs: options of the head (see the head's docstring).
        backbone_kwargs: extra ``timm.create_model`` options, e.g. ``{"img_size": 128}`` or
            ``{"dynamic_img_size": True}`` for ViTs at other resolutions, ``drop_path_rate``.

    Returns:
        ChestXrayModel mapping (B, 1, H, W) -> (B, C).
    """
    if in_chans not in (1, 3):
        raise ValueError(f"Expected argument `in_chans` to be one of [1, 3] but got {in_chans}")
    if num_classes < 1:
        raise ValueError(f"Expected argument `num_classes` >= 1 but got {num_classes}")
    check_backbone(backbone)
    config = dict(backbone=backbone, head=head, num_classes=num_classes, pretrained=pretrained,
                  in_chans=in_chans, weights=None if weights is None else str(weights),
                  head_kwargs=dict(head_kwargs or {}),
                  backbone_kwargs=dict(backbone_kwargs or {}))
    full_state = None
    backbone_file = None
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"`weights` file not found: {path}")
        state = _unwrap_state(torch.load(path, map_location="cpu", weights_only=True))
        if any(k.startswith(("backbone.", "head.")) for k in state):
            full_state = state
        else:
            backbone_file = path
    net = _create_backbone(backbone, pretrained and full_state is None, in_chans, backbone_file,
                           dict(backbone_kwargs or {}))
    h = create_head(head, net.num_features, num_classes, **(head_kwargs or {}))
    model = ChestXrayModel(net, h, replicate=in_chans == 3, config=config)
    if full_state is not None:
        model.load_state_dict(full_state)
    return model
