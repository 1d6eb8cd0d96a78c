"""Multi-label softmax loss, MSML (Ge et al. 2018), with naive, factorised and Triton backends.

Per sample: (1/|P|) Σ_{p∈P} softplus(LSE_N(z) − z_p) — each positive gets a softmax against the
pooled negatives; pairwise: (1/|P|) Σ_p log(1 + Σ_n e^{z_n − z_p}). 0 when P = ∅; a term is 0
when N = ∅.

Source: Ge et al. 2018, arXiv:1807.07247, the MSML error function: for each positive p,
−log(e^{z_p} / (e^{z_p} + Σ_{n∈N} e^{z_n})), averaged over the positives (SPEC §1). No
installed peer and no official code; the tests check every backend against an independent
float64 transcription of that formula (``tests/losses/reference.py``) and against the
naive pairwise form. Deviations, on purpose: a sample without positives contributes 0 (the
formula is undefined there) and still counts in the mean; bf16 logits are clamped to ±65504
(:mod:`losses._common`; the Triton kernel does the same on load); the paper trains it beside
BCE, which here is the composite ``bce+0.1*msml``, not part of ``msml`` itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    KERNEL_DTYPES,
    FunctionalLoss,
    check_reduction,
    compute_logits,
    masked_logsumexp,
    positive_mean,
    prepare,
    reduce_loss,
    softplus,
    validate_inputs,
)
from ._registry import register_loss

BACKENDS = ("auto", "factorised", "naive", "triton")


def msml_factorised(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """O(B·C) form with a hand-written gradient. No input validation.

    Value and gradient as :func:`msml_factorised_autograd` (its plain-autograd twin, the
    reference it is tested against): the forward computes the row LSEs once and, when the
    logits need a gradient, writes ∂loss/∂logits right away (the Triton kernel's scheme on
    CPU), so backward is one multiply. Second derivatives (``create_graph=True``) recompute through the autograd form.

    Args:
        logits: (B, C) floating (fp16/bf16 computed in fp32).
        targets: (B, C) in {0, 1}.
        reduction: "mean" | "sum" | "none".
    """
    check_reduction(reduction)
    if torch.is_grad_enabled() and logits.requires_grad:
        return _MSMLFactorisedFunction.apply(logits, targets, reduction)
    return _msml_rows(logits, targets, reduction, need_grad=False)[0]


def msml_factorised_autograd(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """O(B·C) form in plain differentiable PyTorch: softplus(LSE_N(z) − z_p) averaged over
    the positives. The reference of :func:`msml_factorised` and the form ``torch.compile``
    is benchmarked on. No input validation."""
    z, y = prepare(logits, targets, validate=False)
    lse_neg = masked_logsumexp(z, y == 0, dim=1)  # (B,)
    terms = softplus(lse_neg[:, None] - z)  # (B, C); meaningful at positives only
    return reduce_loss(positive_mean(terms, y), reduction)


def _msml_rows(
    logits: Tensor, targets: Tensor, reduction: str, need_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """The reduced loss and, when ``need_grad``, ∂loss/∂logits (for a grad_output of 1).

    With t_p = lse_N − z_p: L_r = (1/|P|) Σ_p softplus(t_p); ∂L_r/∂z_p = −σ(t_p)/|P|;
    ∂L_r/∂z_n = softmax_N(z)_n · Σ_p σ(t_p)/|P| (SPEC §2).
    """
    # Written for CPU, where an op over (B, C) costs far more than the arithmetic in it, so
    # the form keeps ops and temporaries few (the measurements behind each choice are in
    # benchmarks/results/README.md): bool targets become a float mask through a uint8 view
    # (cheaper than from bool), and float targets in the compute dtype are the mask itself;
    # row sums are mat-vec products (cheaper than sum(dim=1) over a short row); e^x is
    # 2^(x·log2 e) (exp2 is the cheaper CPU kernel), never fed −inf (the underflow slow
    # path); masks are products with the float mask, not masked_fill; the row-max shift is
    # skipped where no logit needs it (_needs_shift); the gradient is built in place.
    with torch.no_grad():
        z = compute_logits(logits)
        if targets.dtype == z.dtype:  # float targets already in the compute dtype: the mask
            posf = targets
        else:
            pos = targets if targets.dtype is torch.bool else targets != 0
            posf = pos.view(torch.uint8).to(z.dtype)
        ones = z.new_ones(z.shape[1])
        inv_p = 1.0 / (posf @ ones).clamp_(min=1)  # (B,)
        if _needs_shift(z):
            m = torch.where(posf != 0, -math.inf, z).amax(dim=1, keepdim=True)
            m = m.nan_to_num_(neginf=0.0)  # rows without negatives: shift 0
            # e^(z_n − m) on N (z_n ≤ m there), 0 on P
            e = (z - m).clamp_(max=0.0).mul_(_LOG2E).exp2_().mul_(1.0 - posf)
        else:  # |z| ≤ _UNSHIFTED_BOUND: e^z neither overflows nor underflows, nor does Σ e^z
            m = None
            e = (z * _LOG2E).exp2_()
            e.addcmul_(e, posf, value=-1.0)  # e − e·[P]: exactly 0 on P, no mask temporary
        s = e @ ones  # 0 only for rows without negatives
        lse = s.log() if m is None else s.log().add_(m[:, 0])
        # lse is −inf without negatives: then softplus = σ = 0
        t = lse[:, None] - z  # t_p on P (finite or −inf everywhere: no NaN)
        sp = F.softplus(t, threshold=_SOFTPLUS_EXACT).mul_(posf)
        per_row = (sp @ ones).mul_(inv_p)
        loss = reduce_loss(per_row, reduction)
        if not need_grad:
            return loss, None
        if reduction == "mean":
            inv_p = inv_p / logits.shape[0]
        ngp = t.sigmoid_().mul_(posf).mul_(-inv_p[:, None])  # −σ(t_p)/|P| on P, 0 elsewhere
        # softmax_N · Σ_p σ(t_p)/|P| = e · (−Σ ngp / s) on N (e = 0 on P; s > 0 where N ≠ ∅)
        coef_n = (ngp @ ones).div_(s.clamp_(min=_TINY)).neg_()  # 0/tiny = 0 without negatives
        grad = ngp.addcmul_(e, coef_n[:, None])  # in place: ngp is not needed any more
        return loss, grad  # compute dtype: cast after grad_output (fp16 + a loss scale)


_LOG2E = 1.4426950408889634
_TINY = torch.finfo(torch.float32).tiny  # below any s of a row with negatives (s ≥ e^-40 or 1)

# Logits of at most this magnitude are exponentiated without the row-max shift: e^±40 and a
# row sum of up to C·e^40 stay normal floats in fp32 (and fp64) for any C below e^48.
_UNSHIFTED_BOUND = 40.0


def _needs_shift(z: Tensor) -> bool:
    """Whether the log-sum-exp needs its row-max shift: some |z| > _UNSHIFTED_BOUND (or NaN).

    On CPU only, where reading the bound back is cheap; elsewhere (CUDA, when the factorised
    form is forced there) that read would synchronise with the device, so the shift is always
    taken.
    """
    if z.device.type != "cpu" or z.numel() == 0:
        return True
    low, high = torch.aminmax(z)
    return not (-_UNSHIFTED_BOUND <= float(low) and float(high) <= _UNSHIFTED_BOUND)


# F.softplus(t) returns t above this threshold; the dropped log1p(e^-t) < 4.3e-18 is under
# half an ulp of t (> 40) in fp64 as in fp32, so the switch changes no value. (The default
# threshold, 20, is off by e^-20 ~ 2e-9, which fp64 would see.)
_SOFTPLUS_EXACT = 40.0


class _MSMLFactorisedFunction(torch.autograd.Function):
    """msml_factorised with the gradient written by the forward (see :func:`_msml_rows`)."""

    @staticmethod
    def forward(ctx, logits, targets, reduction):
        loss, grad = _msml_rows(logits, targets, reduction, need_grad=True)
        ctx.save_for_backward(logits, targets, grad)
        ctx.reduction = reduction
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        logits, targets, grad = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the gradient must itself be differentiable (in the logits and
            # grad_output), so it is recomputed through the autograd form
            loss = msml_factorised_autograd(logits, targets, ctx.reduction)
            (g,) = torch.autograd.grad(loss, logits, grad_output, create_graph=True)
            return g, None, None
        if grad_output.dim() == 0 and grad_output.device.type == "cpu" and grad_output == 1:
            return grad.to(logits.dtype), None, None  # loss.backward(): no (B, C) multiply
        go = grad_output[:, None] if grad_output.dim() else grad_output
        return (grad * go).to(logits.dtype), None, None


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
    if backend == "auto" and logits.is_cuda and logits.dtype in KERNEL_DTYPES:
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
