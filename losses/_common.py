"""Shared pieces of every loss: input validation, reductions, masked log-sum-exp, module base.

A loss is written once as a function ``<name>_loss(logits, targets, *, ..., reduction, validate)``
that returns the reduced loss; :class:`FunctionalLoss` turns it into an ``nn.Module`` whose
keyword arguments (and their defaults) are exactly the function's.

The package convention, shared by every loss function and module:

- ``logits``: (B, C) fp32, fp16, bf16 or fp64; fp16/bf16 are computed in fp32 and the loss
  comes back as fp32 (bf16 first clamped to ±65504, gradient straight through, see ``prepare``).
- ``targets``: (B, C) in {0, 1}; bool, int or float.
- ``reduction``: "none" gives the per-sample loss (B,), "mean" its mean over the B samples,
  "sum" its sum. Element-wise losses take the per-sample loss as the MEAN over the C classes. A
  sample for which a loss is undefined (e.g. no positives) contributes exactly 0 and still
  counts in the mean's denominator. Batch-coupled losses may refuse "none".
- ``validate``: check shapes, dtypes and that targets are in {0, 1} (one device sync), with
  ``ValueError`` messages naming the argument, the allowed and the received; False skips it
  (then soft targets in [0, 1] pass through the element-wise losses unchecked).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The package's lists, kept once: the loss modules, the registry and the Triton kernel layer
# (losses._triton) all read them from here.
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
LOW_PRECISION_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16)  # computed in fp32
# logits dtypes of the Triton kernels (fp64 logits, accepted by the package, stay in PyTorch)
KERNEL_DTYPES: tuple[torch.dtype, ...] = (torch.float32, *LOW_PRECISION_DTYPES)
FLOAT_DTYPES: tuple[torch.dtype, ...] = (*KERNEL_DTYPES, torch.float64)
# bf16 reaches 3.4e38, where differences of logits (and sums over classes) overflow fp32: bf16
# logits are clamped to the fp16 range in value (gradient passed straight through), so every
# loss is finite for all finite bf16 inputs (SPEC §1). Logits that large mean a diverged model.
LOW_PRECISION_BOUND = float(torch.finfo(torch.float16).max)


def check_reduction(reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    """Raise ``ValueError`` unless ``reduction`` is one of ``allowed``."""
    if reduction not in allowed:
        raise ValueError(
            f"Expected argument `reduction` to be one of {list(allowed)} but got {reduction!r}"
        )


def prepare(logits: Tensor, targets: Tensor, *, validate: bool = True) -> tuple[Tensor, Tensor]:
    """Validate the inputs and bring them to the compute dtype.

    fp16/bf16 logits are computed in fp32 (so the loss comes back as fp32); fp32 and fp64 stay
    as they are. bf16 logits are first limited to the fp16 range ±65504 (see
    ``LOW_PRECISION_BOUND``). Targets (bool, int or float) are cast to the compute dtype.

    Args:
        logits: (B, C) floating tensor.
        targets: (B, C) tensor with values in {0, 1}.
        validate: check shapes, dtypes and target values (one device sync); off for speed.

    Returns:
        ``(z, y)``, both (B, C) in the compute dtype.
    """
    if validate:
        validate_inputs(logits, targets)
    z = compute_logits(logits)
    return z, targets.to(z.dtype)


def compute_logits(logits: Tensor) -> Tensor:
    """The logits in the compute dtype, as :func:`prepare` returns them: fp16/bf16 → fp32,
    bf16 first limited to ±``LOW_PRECISION_BOUND`` (straight-through gradient)."""
    z = logits.to(compute_dtype(logits.dtype))
    if logits.dtype is torch.bfloat16:
        z = clamp_straight_through(z, LOW_PRECISION_BOUND)
    return z


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss computes in for logits of ``dtype``: fp32 for fp16/bf16, else itself."""
    return torch.float32 if dtype in LOW_PRECISION_DTYPES else dtype


def clamp_straight_through(z: Tensor, bound: float) -> Tensor:
    """``z.clamp(-bound, bound)`` in value, identity in gradient (the gradient evaluated at the
    clamped point reaches ``z`` unchanged, so saturated logits are still pushed back)."""
    return z.detach().clamp(-bound, bound) + (z - z.detach())  # z − z is exactly 0


def validate_inputs(logits: Tensor, targets: Tensor) -> None:
    """Raise ``ValueError`` naming the argument, what is allowed and what was received."""
    for arg, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, Tensor):
            raise ValueError(
                f"Expected argument `{arg}` to be a torch.Tensor but got {type(value).__name__}"
            )
    if logits.dtype not in FLOAT_DTYPES:
        raise ValueError(
            "Expected argument `logits` to be a floating tensor (float16, bfloat16, float32 or "
            f"float64) but got dtype {logits.dtype}"
        )
    if logits.ndim != 2:
        raise ValueError(
            "Expected argument `logits` to be a 2-D tensor of shape (B, C) but got shape "
            f"{tuple(logits.shape)}"
        )
    if targets.shape != logits.shape:
        raise ValueError(
            f"Expected argument `targets` to have the shape of `logits` {tuple(logits.shape)} "
            f"but got shape {tuple(targets.shape)}"
        )
    if targets.is_complex():
        raise ValueError(
            f"Expected argument `targets` to be bool, int or float but got {targets.dtype}"
        )
    if targets.dtype is not torch.bool:
        bad = targets[(targets != 0) & (targets != 1)]
        if bad.numel():
            shown = bad.unique()[:5].tolist()
            raise ValueError(
                f"Expected argument `targets` to contain only 0 and 1 but got values {shown}"
            )


def reduce_loss(per_sample: Tensor, reduction: str) -> Tensor:
    """Reduce a per-sample loss (B,) to a scalar ("mean", "sum") or keep it ("none")."""
    check_reduction(reduction)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def per_sample_loss(
    fn: Callable[..., Tensor],
    logits: Tensor,
    targets: Tensor,
    reduction: str,
    validate: bool,
    *args: Any,
) -> Tensor:
    """``reduce_loss(fn(z, y, *args), reduction)`` on the prepared inputs; fn gives (B,)."""
    z, y = prepare(logits, targets, validate=validate)
    return reduce_loss(fn(z, y, *args), reduction)


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log Σ_{i: mask_i} exp(x_i) along ``dim``; −inf over an empty set.

    Safe for autograd: an empty set gives −inf in value and exactly 0 gradient (no NaN), and
    masked-out entries get 0 gradient.

    Args:
        x: floating tensor.
        mask: bool tensor broadcastable to ``x``; True marks the members of the set.
        dim: the reduced dimension (removed from the result).
    """
    mask = mask.expand_as(x)
    xm = x.masked_fill(~mask, -math.inf)
    shift = xm.amax(dim=dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    total = torch.exp(xm - shift).sum(dim=dim)
    empty = ~mask.any(dim=dim)
    # log(1) on empty sets keeps the backward finite; the where then puts the −inf back.
    lse = torch.log(torch.where(empty, torch.ones_like(total), total)) + shift.squeeze(dim)
    return torch.where(empty, torch.full_like(lse, -math.inf), lse)


def pair_logsumexp(z: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Naive pairwise log Σ_{p∈P} Σ_{n∈N} exp(z_n − z_p) per row, through a (B, C, C) tensor.

    Args:
        z: (B, C) logits.
        pos, neg: (B, C) bool masks of the positive and negative sets.

    Returns:
        (B,) values, −inf where P or N is empty.
    """
    diff = z[:, None, :] - z[:, :, None]  # (B, C_p, C_n): z_n − z_p
    pairs = pos[:, :, None] & neg[:, None, :]  # (B, C_p, C_n)
    return masked_logsumexp(diff.flatten(1), pairs.flatten(1), dim=1)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = −logsigmoid(−x): exact in every range (``F.softplus`` switches to x above
    20, off by e^−20 in value and gradient), 0 with 0 gradient at −inf."""
    return -F.logsigmoid(-x)


def focusing_weight(base: Tensor, gamma: float) -> Tensor:
    """base^γ for base ≥ 0, with a finite gradient where base = 0: ``pow``'s own gradient there
    is γ·0^(γ−1) = ∞ for γ < 1, and ∞ · 0 = NaN (a saturated logit, or p ≤ clip)."""
    positive = base > 0
    return torch.where(positive, torch.where(positive, base, 1.0).pow(gamma), 0.0**gamma)


def positive_mean(term: Tensor, y: Tensor) -> Tensor:
    """(1/|P|) Σ_{p∈P} term_p per row; 0 for rows without positives. term, y: (B, C) → (B,)."""
    return (term * y).sum(dim=1) / y.sum(dim=1).clamp(min=1)


class FunctionalLoss(nn.Module):
    """``nn.Module`` form of a functional loss, with the function's keyword arguments and defaults.

    Subclass with ``class MyLoss(FunctionalLoss, fn=my_loss): ...``; the module's signature is
    the function's keyword-only parameters, so both forms share one set of published defaults.
    Tensor-like arguments (e.g. class counts) are kept as buffers so ``.to(device)`` moves them.
    """

    fn: ClassVar[Callable[..., Tensor]]
    _params: ClassVar[dict[str, inspect.Parameter]] = {}

    def __init_subclass__(cls, *, fn: Callable[..., Tensor] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if fn is None:
            return
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
        cls.fn = staticmethod(fn)
        cls._params = {p.name: p for p in params}
        cls.__signature__ = inspect.Signature(params)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        cls = type(self)
        unknown = sorted(set(kwargs) - set(cls._params))
        if unknown:
            raise TypeError(
                f"{cls.__name__} got unexpected keyword arguments {unknown}; "
                f"expected some of {sorted(cls._params)}"
            )
        missing = [n for n, p in cls._params.items() if p.default is p.empty and n not in kwargs]
        if missing:
            raise TypeError(f"{cls.__name__} missing required keyword arguments {missing}")
        if "reduction" in kwargs:
            check_reduction(kwargs["reduction"])
        self.options: dict[str, Any] = {}
        for name, param in cls._params.items():
            value = kwargs.get(name, param.default)
            if isinstance(value, Tensor) or hasattr(value, "__array__"):
                self.register_buffer(name, torch.as_tensor(value), persistent=False)
            else:
                self.options[name] = value

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.fn(logits, targets, **self.loss_kwargs())

    def loss_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``forward`` passes to the function: options and buffers."""
        buffers = {name: getattr(self, name) for name in self._params if name not in self.options}
        return {**self.options, **buffers}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
