"""Multi-label softmax loss, MSML (Ge et al. 2018), with naive, factorised and Triton backends.

Per sample: (1/|P|) Σ_{p∈P} softplus(LSE_N(z) − z_p) — each positive gets a softmax against the
pooled negatives; pairwise: (1/|P|) Σ_p log(1 + Σ_n e^{z_n − z_p}). 0 when P = ∅; a term is 0
when N = ∅.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    FunctionalLoss,
    masked_logsumexp,
    positive_mean,
    prepare,
    reduce_loss,
    softplus,
    validate_inputs,
)
from ._registry import register_loss

BACKENDS = ("auto", "factorised", "naive", "triton")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def msml_factorised(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """O(B·C) form: softplus(LSE_N(z) − z_p) averaged over the positives. No input validation.

    Args:
        logits: (B, C) floating (fp16/bf16 computed in fp32).
        targets: (B, C) in {0, 1}.
        reduction: "mean" | "sum" | "none".
    """
    z, y = prepare(logits, targets, validate=False)
    lse_neg = masked_logsumexp(z, y == 0, dim=1)  # (B,)
    terms = softplus(lse_neg[:, None] - z)  # (B, C); meaningful at positives only
    return reduce_loss(positive_mean(terms, y), reduction)


def msml_naive(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Pairwise definition through a (B, C, C) tensor: log(1 + Σ_n e^{z_n − z_p}) per positive.

    The reference (and benchmark baseline) for the fast forms. No input validation.
    """
    z, y = prepare(logits, targets, validate=False)
    diff = z[:, None, :] - z[:, :, None]  # (B, C_p, C_n): z_n − z_p
    neg = (y == 0)[:, None, :].expand_as(diff)
    terms = softplus(masked_logsumexp(diff, neg, dim=2))  # (B, C_p)
    return reduce_loss(positive_mean(terms, y), reduction)


def _load_triton():
    """``msml_triton`` if the kernel layer and triton import, else None."""
    try:
        from losses._triton import is_available

        if not is_available():
            return None
        from losses._triton.msml import msml_triton
    except ImportError:
        return None
    return msml_triton


def msml_loss(
    logits: Tensor,
    targets: Tensor,
    *,
    reduction: str = "mean",
    backend: str = "auto",
    validate: bool = True,
) -> Tensor:
    """MSML with a choice of implementation.

    Args:
        logits: (B, C) floating (fp16/bf16 accumulated in fp32).
        targets: (B, C) in {0, 1}.
        reduction: "mean" | "sum" | "none".
        backend: "auto" (Triton for fp32/fp16/bf16 CUDA tensors when available, else
            factorised),
            "factorised" (O(B·C) PyTorch), "naive" (B×C×C pairwise) or "triton".
        validate: check the inputs.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"Expected argument `backend` to be one of {list(BACKENDS)} but got {backend!r}"
        )
    if validate:
        validate_inputs(logits, targets)
    if backend == "triton":
        kernel = _load_triton()
        if kernel is None:
            raise RuntimeError(
                "msml backend='triton' needs triton and the kernel module losses._triton.msml, "
                "which could not be imported; use backend='auto' or 'factorised'"
            )
        return kernel(logits, targets, reduction=reduction)
    # the kernel takes fp32/fp16/bf16; fp64 (accepted by the package) stays in PyTorch
    if backend == "auto" and logits.is_cuda and logits.dtype in _KERNEL_DTYPES:
        kernel = _load_triton()
        if kernel is not None:
            return kernel(logits, targets, reduction=reduction)
    if backend == "naive":
        return msml_naive(logits, targets, reduction)
    return msml_factorised(logits, targets, reduction)


@register_loss(
    "msml",
    reference="Ge et al. 2018, Chest X-rays Classification: A Multi-Label and Fine-Grained Problem",
)
class MSMLLoss(FunctionalLoss, fn=msml_loss):
    """Module form of :func:`msml_loss`."""
