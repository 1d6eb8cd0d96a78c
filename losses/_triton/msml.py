"""MSML (multi-label softmax loss) as a fused Triton kernel: value and gradient in one launch.

Per row r with logits z, positives P and negatives N (SPEC §1, §2)::

    L_r        = (1/|P|) Σ_p softplus(lse_N − z_p)            (0 when P = ∅; a term is 0 when N = ∅)
    ∂L_r/∂z_p  = −σ(lse_N − z_p) / |P|
    ∂L_r/∂z_n  = softmax_N(z)_n · Σ_p σ(lse_N − z_p) / |P|

Kernel design
-------------
* A program owns a tile of ``ROWS × BLOCK_C`` (rows × classes); all reductions are along
  the class axis and accumulate in fp32 whatever the logits dtype.
* **Single-block path** (``C ≤ 8192``): the whole row tile is loaded once and kept in
  registers; small C packs many rows per program (C=14 → 128 rows × 16 columns). Bytes
  per element: read logits + targets once, write the gradient once (when needed) —
  the minimum: bf16 logits + bool targets → 2 + 1 read + 2 written = 5 bytes per element
  with gradient, 3 without. The loss is written per row (4 bytes per row). fp16 logits get
  an fp32 gradient (see :func:`_grad_dtype`), cast to fp16 in ``backward``: 2 + 1 + 4, then
  4 + 2 more.
* **Block loop** (``C > 8192``, up to any C): pass 1 keeps an online log-sum-exp of the
  negatives (running max + rescaled sum) and |P|; pass 2 accumulates Σ_p softplus(lse_N − z_p)
  and Σ_p σ(lse_N − z_p) — both need the *final* lse_N and, unlike exp, σ and softplus
  cannot be rescaled when the running max moves, so they cannot share pass 1; pass 3
  (only when the gradient is wanted) writes the gradient. Reads: 3 × (logits + targets)
  with gradient, 2 × without; writes: the gradient once — bf16 + bool: 3·3 + 2 = 11 bytes
  per element from the SMs' side; the re-reads of a row (≤ 300 KB at C = 10^5) should mostly
  hit L2 (not measured).
* The gradient is written by the forward, already scaled by the reduction (1/B for
  "mean"). ``backward`` only multiplies by ``grad_output``, in place, with a kernel whose
  programs exit after one scalar load when ``grad_output == 1`` (a plain
  ``loss.backward()``), so forward + backward moves ~the bytes of the forward alone
  (fp32/bf16 logits; fp16 adds the cast of its fp32 gradient). Consequence: the saved gradient is consumed, and a second backward through the same
  graph raises (as in Liger-Kernel's fused losses), and so does a second derivative
  (``create_graph=True`` then differentiating the gradient).
* Offsets are int64 (row and column index times stride), so B·C ≥ 2^31 is fine.
* Inputs are not copied: logits and targets are read through their strides (any
  layout); bool targets are reinterpreted as uint8 (a view). The gradient is allocated
  contiguous in the logits dtype (fp32 for fp16 logits).
* softplus and σ are written with exp/log only (no libdevice log1p), in stable forms.
* bf16 logits are clamped to ±65504 on load, as ``losses._common.prepare`` does (value of
  the clamped logits, gradient passed straight through), so all finite bf16 inputs give a
  finite loss and gradient.

No autotuning: the launch configuration is a heuristic of C (see :func:`_launch_config`),
so every variant compiles ahead of time without a GPU (``tests/triton`` builds cubin).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

__all__ = ["msml_triton", "MSMLTritonFunction", "INTERPRETED"]

_REDUCTIONS = ("mean", "sum", "none")
_LOGIT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Launch heuristics (see the module docstring and _launch_config).
_MAX_SINGLE_BLOCK_C = 8192  # largest row kept whole in registers. 16384 (32 warps) spilled
# 60 bytes (ptxas -v, sm_90) and ran 1.7x slower than the block loop at C=10^4 on an H200
# (python -m benchmarks.sweep, 2026-11-26)
_LOOP_BLOCK_C = 2048  # chunk of the block loop for larger C (best of 1024-8192 in that sweep)
_LOOP_WARPS = 4
_LOG_GROUP = tl.constexpr(8)  # softplus logs summed as the log of products of 8 (≤ 2^8)
_TILE_ELEMS = 2048  # elements per program for small C (rows × BLOCK_C)
_MAX_ROWS = 128


@triton.jit
def _softplus(x):
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): never overflows; softplus(-inf) = 0.
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _sigmoid(x):
    # exp of a non-positive number only; sigmoid(-inf) = 0.
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    return tl.where(x >= 0, r, e * r)


@triton.jit
def _max_and_add(m0, c0, m1, c1):
    return tl.maximum(m0, m1), c0 + c1


@triton.jit
def _add_and_add(a0, b0, a1, b1):
    return a0 + a1, b0 + b1


@triton.jit
def _max_neg_and_count_pos(z, pos, neg):
    """Per row: (max of z over N, |P|) in one reduction (one cross-warp exchange)."""
    return tl.reduce((tl.where(neg, z, float("-inf")), pos.to(tl.float32)), 1, _max_and_add)


@triton.jit
def _sum2(a, b):
    """Per row: (Σ a, Σ b) in one reduction."""
    return tl.reduce((a, b), 1, _add_and_add)


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _softplus_sigmoid_sums(t, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Per row (Σ softplus(t), Σ σ(t)), and σ(t) (ROWS, BLOCK_C).

    softplus(t) = max(t, 0) + log(1 + a) with a = e^-|t| ∈ [0, 1]: the logs are summed as
    the log of products of _LOG_GROUP factors (each in [1, 2], so a product ≤ 2^_LOG_GROUP):
    one log per group instead of per element (log has no hardware instruction; it costs
    ~15 FMAs). −inf entries give a = 0: factor 1, max 0, σ 0.
    """
    G: tl.constexpr = _LOG_GROUP
    a = tl.exp(-tl.abs(t))
    r = 1.0 / (1.0 + a)
    sig = tl.where(t >= 0, r, a * r)
    prod = tl.reduce(tl.reshape(1.0 + a, [ROWS, BLOCK_C // G, G]), 2, _mul)
    lin = tl.sum(tl.reshape(tl.maximum(t, 0.0), [ROWS, BLOCK_C // G, G]), axis=2)
    sig_g = tl.sum(tl.reshape(sig, [ROWS, BLOCK_C // G, G]), axis=2)
    sp_sum, sig_sum = _sum2(lin + tl.log(prod), sig_g)
    return sp_sum, sig_sum, sig


@triton.jit
def _load_tile(z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc):
    """Load a (ROWS, BLOCK_C) tile: logits as fp32, and the positive / negative masks.

    ``z_rows``/``y_rows`` are (ROWS,) pointers to the rows' first elements.
    """
    cols64 = cols.to(tl.int64)
    mask = row_mask[:, None] & (cols < C)[None, :]
    z = tl.load(z_rows[:, None] + cols64[None, :] * stride_zc, mask=mask, other=0.0)
    y = tl.load(y_rows[:, None] + cols64[None, :] * stride_yc, mask=mask, other=0)
    pos = mask & (y != 0)
    neg = mask & (y == 0)
    z = z.to(tl.float32)
    if z_rows.dtype.element_ty == tl.bfloat16:
        # as losses._common.prepare: bf16 clamped to the fp16 range (its 3.4e38 would overflow
        # lse_N − z_p); the gradient at the clamped point is the one written
        z = tl.minimum(tl.maximum(z, -65504.0), 65504.0)
    return z, pos, neg, mask


@triton.jit
def _margins(z, pos, lse):
    """t = lse_N − z on the positives, −inf elsewhere (where softplus(t) = σ(t) = 0)."""
    return tl.where(pos, lse[:, None] - z, float("-inf"))


@triton.jit
def _msml_fwd_kernel(
    z_ptr,  # (B, C) logits, fp32/fp16/bf16, any strides
    y_ptr,  # (B, C) targets, uint8 (bool view) / int / float, any strides
    loss_ptr,  # (B,) fp32 per-row loss (out)
    grad_ptr,  # (B, C) gradient in the logits dtype (out; unused unless WRITE_GRAD)
    B,
    c_units,  # C in units of ROW_ALIGN
    zb_units,  # row strides of logits, targets and gradient, in units of ROW_ALIGN elements
    stride_zc,
    yb_units,
    stride_yc,
    gb_units,
    grad_scale,  # fp32 factor of the written gradient: 1/B for "mean", else 1
    partial_ptr,  # (num_programs,) fp32 scratch: each program's Σ of its rows' loss (REDUCE)
    counter_ptr,  # int32 ticket counter, 0 between launches (REDUCE; reset by the last program)
    ROWS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    SINGLE: tl.constexpr,  # C <= BLOCK_C: whole rows in registers, one read
    WRITE_GRAD: tl.constexpr,
    REDUCE: tl.constexpr,  # "mean"/"sum": loss_ptr gets the scalar Σ_r L_r · grad_scale
    RBLOCK: tl.constexpr,  # chunk of the final reduction over the partials
    ROW_ALIGN: tl.constexpr,  # power of two (≤ 16) dividing C and every row stride: lets the
    # compiler prove that rows start aligned and that the column mask is constant over
    # ROW_ALIGN columns, so contiguous rows load and store in wide vectors
):
    NEG_INF: tl.constexpr = float("-inf")
    C = c_units * ROW_ALIGN
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    row_mask = rows < B
    rows64 = rows.to(tl.int64)  # int64 offsets: B * C may exceed 2**31
    z_rows = z_ptr + rows64 * (zb_units * ROW_ALIGN)
    y_rows = y_ptr + rows64 * (yb_units * ROW_ALIGN)
    g_rows = grad_ptr + rows64 * (gb_units * ROW_ALIGN)
    cols = tl.arange(0, BLOCK_C)

    # ---- pass 1: lse over the negatives (m: max, s: Σ e^(z - m)) and |P| -------------------
    if SINGLE:
        z, pos, neg, mask = _load_tile(z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc)
        m, n_pos = _max_neg_and_count_pos(z, pos, neg)
        m_safe = tl.where(m == NEG_INF, 0.0, m)
        e = tl.exp(tl.where(neg, z - m_safe[:, None], NEG_INF))  # 0 off N
        s = tl.sum(e, axis=1)
    else:
        m = tl.full([ROWS], NEG_INF, tl.float32)
        s = tl.zeros([ROWS], tl.float32)
        n_pos = tl.zeros([ROWS], tl.float32)
        for start in range(0, C, BLOCK_C):
            zc, pc, nc, _ = _load_tile(
                z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc
            )
            m_chunk, n_pos_chunk = _max_neg_and_count_pos(zc, pc, nc)
            m_new = tl.maximum(m, m_chunk)
            m_new_safe = tl.where(m_new == NEG_INF, 0.0, m_new)
            s = s * tl.exp(m - m_new_safe) + tl.sum(
                tl.exp(tl.where(nc, zc - m_new_safe[:, None], NEG_INF)), axis=1
            )
            m = m_new
            n_pos += n_pos_chunk
        m_safe = tl.where(m == NEG_INF, 0.0, m)
    has_neg = s > 0.0  # the max negative contributes e^0 = 1, so s >= 1 iff N is not empty
    lse = tl.where(has_neg, m_safe + tl.log(tl.where(has_neg, s, 1.0)), NEG_INF)
    inv_p = 1.0 / tl.maximum(n_pos, 1.0)
    coef_p = inv_p * grad_scale  # |∂L/∂z_p| = σ(t_p) · coef_p

    # ---- pass 2: t_p = lse_N - z_p (-inf off P, so softplus = σ = 0 there) -----------------
    if SINGLE:
        t = _margins(z, pos, lse)
        if WRITE_GRAD:
            sp_sum, sig_sum, sig = _softplus_sigmoid_sums(t, ROWS, BLOCK_C)
            loss = sp_sum * inv_p
            coef_n = sig_sum * coef_p  # Σ_p σ(t_p) / |P| (× grad_scale)
            inv_s = 1.0 / tl.where(has_neg, s, 1.0)
            g = tl.where(pos, -sig * coef_p[:, None], e * (inv_s * coef_n)[:, None])
            g_ptrs = g_rows[:, None] + cols[None, :]
            tl.store(g_ptrs, g.to(grad_ptr.dtype.element_ty), mask=mask)
        else:
            loss = tl.sum(_softplus(t), axis=1) * inv_p
    else:
        loss_acc = tl.zeros([ROWS], tl.float32)
        sig_acc = tl.zeros([ROWS], tl.float32)
        for start in range(0, C, BLOCK_C):
            zc, pc, nc, _ = _load_tile(
                z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc
            )
            tc = _margins(zc, pc, lse)
            if WRITE_GRAD:
                sp_sum, sig_sum, _ = _softplus_sigmoid_sums(tc, ROWS, BLOCK_C)
                loss_acc += sp_sum
                sig_acc += sig_sum
            else:
                loss_acc += tl.sum(_softplus(tc), axis=1)
        loss = loss_acc * inv_p
        # ---- pass 3: the gradient ------------------------------------------------------------
        if WRITE_GRAD:
            coef_n = sig_acc * coef_p
            lse_safe = tl.where(has_neg, lse, 0.0)
            for start in range(0, C, BLOCK_C):
                zc, pc, nc, maskc = _load_tile(
                    z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc
                )
                tc = _margins(zc, pc, lse)
                softmax_n = tl.exp(tl.where(nc, zc - lse_safe[:, None], NEG_INF))
                g = tl.where(pc, -_sigmoid(tc) * coef_p[:, None], softmax_n * coef_n[:, None])
                g_ptrs = g_rows[:, None] + (start + cols)[None, :]
                tl.store(g_ptrs, g.to(grad_ptr.dtype.element_ty), mask=maskc)

    if REDUCE:
        _reduce_rows(loss, row_mask, loss_ptr, partial_ptr, counter_ptr, grad_scale, RBLOCK)
    else:
        tl.store(loss_ptr + rows, loss, mask=row_mask)


@triton.jit
def _reduce_rows(loss, row_mask, out_ptr, partial_ptr, counter_ptr, scale, RBLOCK: tl.constexpr):
    """out = scale · Σ over all programs of this program's rows' loss, inside the launch.

    Each program stores its partial sum, then takes a ticket from the counter; the program
    that takes the last ticket adds the partials in program order (a deterministic sum, unlike
    float atomics), writes the scalar and resets the counter to 0 for the next launch. The
    barriers order every thread's store before the ticket (release) and the reads of the
    partials after it (acquire); the partials are read past L1 (.cg).
    """
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    tl.store(partial_ptr + pid, tl.sum(tl.where(row_mask, loss, 0.0), axis=0))
    tl.debug_barrier()
    ticket = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
    tl.debug_barrier()
    if ticket == n_programs - 1:
        acc = tl.zeros([RBLOCK], tl.float32)
        for start in range(0, n_programs, RBLOCK):
            idx = start + tl.arange(0, RBLOCK)
            acc += tl.load(partial_ptr + idx, mask=idx < n_programs, other=0.0, cache_modifier=".cg")
        tl.store(out_ptr, tl.sum(acc, axis=0) * scale)
        tl.atomic_xchg(counter_ptr, 0)


@triton.jit
def _scale_rows_kernel(
    grad_ptr,  # (B, C) contiguous rows, scaled in place
    go_ptr,  # grad_output: one fp32 per row, or a scalar (stride_go = 0)
    stride_go,
    B,
    c_units,  # C and the row stride of grad in units of ROW_ALIGN elements
    gb_units,
    ROWS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    ROW_ALIGN: tl.constexpr,
):
    """grad *= grad_output, rows broadcast. A grid of a few programs per SM strides over
    the row tiles, so that the usual case, a scalar grad_output of 1 (``loss.backward()``),
    costs each program one scalar load. (NaN != 1, so a NaN grad_output still propagates.)"""
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    C = c_units * ROW_ALIGN
    todo = (tl.load(go_ptr).to(tl.float32) != 1.0) | (stride_go != 0)
    if todo:
        for tile in range(pid, tl.cdiv(B, ROWS), n_programs):
            rows = tile * ROWS + tl.arange(0, ROWS)
            row_mask = rows < B
            rows64 = rows.to(tl.int64)
            go = tl.load(go_ptr + rows64 * stride_go, mask=row_mask, other=1.0).to(tl.float32)
            if tl.sum((go != 1.0).to(tl.int32), axis=0) > 0:
                g_rows = grad_ptr + rows64 * (gb_units * ROW_ALIGN)
                for start in range(0, C, BLOCK_C):
                    cols = start + tl.arange(0, BLOCK_C)
                    mask = row_mask[:, None] & (cols < C)[None, :]
                    ptrs = g_rows[:, None] + cols[None, :]
                    g = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32) * go[:, None]
                    tl.store(ptrs, g.to(grad_ptr.dtype.element_ty), mask=mask)


#: True when this module's kernels were built by the Triton interpreter
#: (``TRITON_INTERPRET=1`` at import): they then run on CPU tensors.
INTERPRETED = not isinstance(_msml_fwd_kernel, triton.runtime.JITFunction)


@dataclass(frozen=True)
class LaunchConfig:
    """Compile-time shape of one forward launch (a heuristic of C, no autotuning)."""

    rows: int  # rows per program
    block_c: int  # columns per tile (power of two)
    single: bool  # whole rows in one tile (one read) vs the 3-pass block loop
    num_warps: int


def _launch_config(C: int, block_c: int | None = None) -> LaunchConfig:
    """Heuristic launch configuration for C classes.

    ``block_c`` forces the tile width (tests use it to run the block loop at small C).
    """
    if block_c is None:
        block_c = max(16, triton.next_power_of_2(C))
        if block_c > _MAX_SINGLE_BLOCK_C:
            block_c = _LOOP_BLOCK_C
    if C > block_c:
        return LaunchConfig(rows=1, block_c=block_c, single=False, num_warps=_LOOP_WARPS)
    # Tiles of 2048 elements; 16 values per thread for rows of ≥ 256 columns, else 8.
    # (H200 sweeps, 2026-11-26: at C=1000, 2 rows × 4 warps was the best or within 1% of it
    # in all three; at C=14, 128 rows × 8 warps was within 25% of the best, 10.8 vs 13.3 us.)
    per_thread = 16 if block_c >= 256 else 8
    rows = max(1, min(_MAX_ROWS, _TILE_ELEMS // block_c))
    num_warps = min(32, max(4, rows * block_c // (32 * per_thread)))
    return LaunchConfig(rows=rows, block_c=block_c, single=True, num_warps=num_warps)


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"Expected argument `reduction` to be one of {list(_REDUCTIONS)} but got {reduction!r}"
        )
    if logits.dim() != 2:
        raise ValueError(f"Expected `logits` of shape (B, C) but got {tuple(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(
            f"Expected `targets` of shape {tuple(logits.shape)} (as logits) but got {tuple(targets.shape)}"
        )
    if logits.dtype not in _LOGIT_DTYPES:
        raise ValueError(
            f"Expected `logits` dtype to be one of {[str(d) for d in _LOGIT_DTYPES]} but got {logits.dtype}"
        )
    if targets.device != logits.device:
        raise ValueError(
            f"Expected `targets` on the device of `logits` ({logits.device}) but got {targets.device}"
        )
    if not (logits.is_cuda or INTERPRETED):
        raise ValueError(
            f"msml_triton needs CUDA tensors but got device {logits.device}; use the factorised "
            "PyTorch form (losses.msml.msml_loss(..., backend='factorised')) or set "
            "TRITON_INTERPRET=1 before importing losses._triton.msml"
        )


def msml_forward(
    logits: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "mean",
    need_grad: bool = False,
    block_c: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One kernel launch: the reduced loss and, when ``need_grad``, the scaled gradient.

    "mean" and "sum" are reduced inside the launch (see :func:`_reduce_rows`), so the value
    and the gradient of a scalar loss cost exactly one kernel launch.

    Args:
        logits: (B, C) fp32/fp16/bf16.
        targets: (B, C) bool/int/float in {0, 1}.
        reduction: "mean" | "sum" (fp32 scalar) | "none" (per-row (B,) fp32); also decides
            the gradient's scale (1/B for "mean").
        need_grad: write ∂loss/∂logits (for a grad_output of 1).
        block_c: force the tile width (testing the block loop at small C).

    Returns:
        the loss, and the gradient (B, C) or None: in the logits dtype, fp32 for fp16 logits
        (see :func:`_grad_dtype`).
    """
    B, C = logits.shape
    device = logits.device
    grad_dtype = _grad_dtype(logits.dtype)
    grad = torch.empty((B, C), dtype=grad_dtype, device=device) if need_grad else None
    reduce = reduction != "none"
    if B == 0:
        empty = torch.empty(0, dtype=torch.float32, device=device)
        loss = empty.mean() if reduction == "mean" else empty.sum() if reduce else empty
        return loss, grad
    y = targets.view(torch.uint8) if targets.dtype == torch.bool else targets  # no copy
    cfg = _launch_config(C, block_c)
    n_programs = triton.cdiv(B, cfg.rows)
    scale = 1.0 / B if reduction == "mean" else 1.0
    align = _row_align(C, logits.stride(0), y.stride(0), grad.stride(0) if need_grad else 0)
    if reduce:
        out = torch.empty((), dtype=torch.float32, device=device)
        partials = torch.empty(n_programs, dtype=torch.float32, device=device)
        counter = _ticket_counter(device)
    else:
        out = torch.empty(B, dtype=torch.float32, device=device)
        partials = counter = out  # unused
    _msml_fwd_kernel[(n_programs,)](
        logits, y, out, grad if need_grad else out,
        B, C // align,
        logits.stride(0) // align, logits.stride(1), y.stride(0) // align, y.stride(1),
        grad.stride(0) // align if need_grad else 0,
        scale, partials, counter,
        ROWS=cfg.rows, BLOCK_C=cfg.block_c, SINGLE=cfg.single, WRITE_GRAD=need_grad,
        REDUCE=reduce, RBLOCK=_RBLOCK, ROW_ALIGN=align, num_warps=cfg.num_warps,
    )  # fmt: skip
    return out, grad


def _scale_programs(device: torch.device) -> int:
    """Programs of a scale launch: 4 per SM (8 under the interpreter)."""
    if device.type != "cuda":
        return 8
    return 4 * torch.cuda.get_device_properties(device).multi_processor_count


def _row_align(*numbers: int) -> int:
    """The largest power of two ≤ 16 dividing every number (0 is divided by anything)."""
    align = 16
    while any(n % align for n in numbers):
        align //= 2
    return align


_RBLOCK = 1024  # partials summed per step by the last program of a reducing launch
_counters: dict[tuple, torch.Tensor] = {}


def _ticket_counter(device: torch.device) -> torch.Tensor:
    """The int32 ticket counter of reducing launches on ``device``'s current stream.

    Zeroed once, when first made; every launch leaves it at 0 again (its last program resets
    it), so no per-launch memset is needed. One per stream, so that launches that may run
    concurrently never share one.
    """
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device.type, device.index, stream)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = torch.zeros((), dtype=torch.int32, device=device)
    return counter


def _grad_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype of the gradient written by the forward.

    fp16 gets fp32: the written gradient is scaled by 1/B ("mean") before ``backward`` learns
    grad_output, and fp16's range would flush it to 0 or subnormals that a loss scale
    (AMP's GradScaler, 2^16) then cannot restore. bf16 has fp32's exponent range.
    """
    return torch.float32 if dtype == torch.float16 else dtype


def scale_grad_(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """``grad *= grad_output`` in place, rows broadcast; free when grad_output is all ones.

    Args:
        grad: (B, C) contiguous rows.
        grad_output: scalar, or (B,) for reduction "none".
    """
    B, C = grad.shape
    if B == 0 or C == 0:
        return grad
    go = grad_output.to(torch.float32)
    stride_go = 0 if go.dim() == 0 else go.stride(0)
    block_c = min(_LOOP_BLOCK_C, max(16, triton.next_power_of_2(C)))
    rows = max(1, _TILE_ELEMS // block_c)
    n_tiles = triton.cdiv(B, rows)
    align = _row_align(C, grad.stride(0))
    _scale_rows_kernel[(min(n_tiles, _scale_programs(grad.device)),)](
        grad, go, stride_go, B, C // align, grad.stride(0) // align,
        ROWS=rows, BLOCK_C=block_c, ROW_ALIGN=align, num_warps=4,
    )  # fmt: skip
    return grad


class MSMLTritonFunction(torch.autograd.Function):
    """MSML with the gradient computed by the forward kernel (differentiable w.r.t. logits)."""

    @staticmethod
    def forward(ctx, logits, targets, reduction):
        loss, grad = msml_forward(logits, targets, reduction, need_grad=True)
        ctx.save_for_backward(grad)
        ctx.consumed = False
        ctx.logits_dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.consumed:
            raise RuntimeError(
                "msml_triton: the gradient written by the forward kernel is scaled in place and "
                "can be used by one backward only; recompute the loss instead of retain_graph=True"
            )
        ctx.consumed = True
        (grad,) = ctx.saved_tensors
        with torch.no_grad():
            grad = scale_grad_(grad, grad_output).to(ctx.logits_dtype)
        if torch.is_grad_enabled():  # create_graph=True
            grad = _raise_on_second_derivative(grad)
        return grad, None, None


def _raise_on_second_derivative(grad: torch.Tensor) -> torch.Tensor:
    """``grad`` behind a node that raises when differentiated.

    ``once_differentiable`` attaches such a node only when grad_output requires grad; the
    kernel's gradient depends on the logits whatever grad_output is, so without the node a
    second derivative would silently take it as a constant.
    """
    err = torch._C._functions.DelayedError(
        b"msml_triton has no second derivative (its gradient comes from the forward kernel); "
        b"use msml_loss(..., backend='factorised') for double backward",
        1,
    )
    return err(grad.detach().requires_grad_())


def msml_triton(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """MSML loss by the fused Triton kernel.

    Writes the gradient during the forward only when ``logits.requires_grad`` and grad
    mode is on; otherwise one launch computes the value alone.

    Args:
        logits: (B, C) fp32/fp16/bf16, CUDA (or CPU under ``TRITON_INTERPRET=1``).
        targets: (B, C) bool/int/float in {0, 1}.
        reduction: "mean" (over all B rows, rows without positives count), "sum" or "none".

    Returns:
        fp32 scalar, or (B,) fp32 for ``reduction="none"``.
    """
    _check_inputs(logits, targets, reduction)
    if torch.is_grad_enabled() and logits.requires_grad:
        return MSMLTritonFunction.apply(logits, targets, reduction)
    loss, _ = msml_forward(logits, targets, reduction, need_grad=False)
    return loss
