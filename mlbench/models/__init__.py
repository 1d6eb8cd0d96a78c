"""Models: timm backbones with a registered classification head (SPEC section 4).

``build`` (``build_model``: a timm backbone with 1 or 3 input channels, its normalisation,
``check_backbone``) and ``heads`` (the head registry: linear, bilinear, compact_bilinear).
Imports torch and timm, nothing of mlbench.
"""

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
