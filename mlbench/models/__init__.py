"""Models: timm backbones with a registered classification head (SPEC section 4)."""

from .build import ChestXrayModel, build_model, check_backbone
from .heads import (
    BilinearHead,
    CompactBilinearHead,
    HeadInfo,
    LinearHead,
    create_head,
    get_head_info,
    list_heads,
    register_head,
    signed_sqrt,
)

__all__ = [
    "BilinearHead",
    "ChestXrayModel",
    "CompactBilinearHead",
    "HeadInfo",
    "LinearHead",
    "build_model",
    "check_backbone",
    "create_head",
    "get_head_info",
    "list_heads",
    "register_head",
    "signed_sqrt",
]
