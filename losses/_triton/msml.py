"""MSML (multi-label softmax loss) as a fused Triton kernel: value and gradient in one launch.

Per row r with logits z, positives P and negatives N (SPEC §1, §2)::

    L_r        = (1/|P|) Σ_p softplus(lse_N − z_p)            (0 when P = ∅; a term is 0 when N = ∅)
    ∂L_r/∂z_p  = −σ(lse_N − z_p) / |P|
    ∂L_r/∂z_n  = softmax_N(z)_n · Σ_p σ(lse_N − z_p) / |P|

Kernel design
-------------
* A program handles tiles of ``ROWS × BLOCK_C`` (rows × classes), one after another: the grid
  is a few programs per SM (``LaunchConfig.warps_per_sm`` resident warps), each striding over
  the row tiles, so that a reducing launch takes a few thousand tickets (see
  :func:`_reduce_programs`), not one per tile. All reductions run along the class axis and
  accumulate in fp32 whatever the logits dtype.
* **Single-block path** (``C ≤ 8192``): a tile of whole rows is loaded once and kept in
  registers. Rows of ≥ 256 columns: 32 values per thread, one warp per 1024 columns (C=1000
  → one row per one-warp program: the row reductions are warp shuffles, no shared memory);
  short rows pack many rows per program (C=14 → 128 rows × 16 columns, 8 warps). Bytes per
  element: read logits + targets once, write the gradient once (when needed) — the minimum:
  bf16 logits + bool targets → 2 + 1 read + 2 written = 5 bytes per element with gradient, 3
  without. fp16 logits get an fp32 gradient (see :func:`_grad_dtype`), cast to fp16 in
  ``backward``: 2 + 1 + 4, then 4 + 2 more.
* **Few instructions per element**, since at 5 bytes per element the kernel is bound by
  instruction issue as much as by memory (``tests/triton/test_msml_compile.py`` keeps the
  sm_90 loop bodies under an instruction budget; ``python -m benchmarks.sass`` prints the
  counts, and ``benchmarks/results/README.md`` their history):
  - everything in base 2 with one exp per element on each side: e^(z_n − m) = 2^(z·log2 e −
    m·log2 e) (one FFMA + one ex2) on N; on P, x = −t·log2 e with t = lse_N − z_p and
    v = 2^−|x| = e^−|t| gives softplus(t) = ln 2·(log2(1 + v) − min(x, 0)) and
    σ(t) = 1/(1 + v) or v/(1 + v) — off P, x = +inf makes every term 0 without a select;
  - the softplus logs as the log of products of 8 factors in [1, 2] (one log per 8);
  - compiled (not interpreted), exp2, log2 and the reciprocal are single MUFU instructions
    (``ex2/lg2/rcp.approx.ftz`` through inline PTX, ``FAST``): ~2 ulp, subnormals flushed;
    the P side's 2^−|x| takes its −|·| as an operand modifier of the MUFU, and bf16 pairs
    are unpacked with a shift and a mask;
  - bool targets: the masked tail of a row reads y = 2, so P is ``y == 1`` and N ``y == 0``
    with no mask of their own, and |P| is Σ y as integers;
  - the gradient is ``u·c_N − σ·c_P`` (u = 0 on P, σ = 0 on N): no select.
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
  (fp32/bf16 logits; fp16 adds the cast of its fp32 gradient). Consequence: the saved
  gradient is consumed, and a second backward through the same graph raises (as in
  Liger-Kernel's fused losses), and so does a second derivative (``create_graph=True`` then
  differentiating the gradient).
* ``LaunchConfig.num_stages`` > 1 software-pipelines the loads (Triton's pipeliner: the next
  tile, or block-loop chunk, is copied into shared memory with ``cp.async`` while the current
  one is computed). Not yet timed on a GPU, so the heuristic keeps 1; ``benchmarks.sweep``
  tries it.
* Offsets are int64 (row and column index times stride), so B·C ≥ 2^31 is fine.
* Inputs are not copied: logits and targets are read through their strides (any
  layout); bool targets are reinterpreted as uint8 (a view). The gradient is allocated
  contiguous in the logits dtype (fp32 for fp16 logits).
* softplus and σ are written with exp2/log2 only (no libdevice log1p), in stable forms.
* bf16 logits are clamped to ±65504 on load, as ``losses._common.prepare`` does (value of
  the clamped logits, gradient passed straight through), so all finite bf16 inputs give a
  finite loss and gradient. NaN stays NaN through the clamp (on sm_90 one
  ``min.NaN.xorsign.abs`` per element), and a NaN logit gives its row a NaN loss, as in the
  PyTorch forms.

No autotuning: the launch configuration is a heuristic of C (see :func:`_launch_config`),
so every variant compiles ahead of time without a GPU (``tests/triton`` builds cubin).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .._common import KERNEL_DTYPES, check_reduction

__all__ = ["msml_triton", "MSMLTritonFunction", "INTERPRETED"]

# Launch heuristics (see the module docstring and _launch_config).
_MAX_SINGLE_BLOCK_C = 8192  # largest row kept whole in registers: wider rows spill (ptxas -v)
# and lose to the block loop (benchmarks/results/README.md, "Launch heuristics")
_LOOP_BLOCK_C = 2048  # chunk of the block loop for larger C (the best chunk in the sweep)
_LOOP_WARPS = 4
_LOG_GROUP = tl.constexpr(8)  # softplus logs summed as the log of products of 8 (≤ 2^8)
_TILE_ELEMS = 2048  # elements per program for small C (rows × BLOCK_C)
_WARP_TILE_ELEMS = 1024  # elements per warp for C ≥ 256 (32 per thread)
_WARPS_PER_SM = 16  # resident warps per SM the grid aims at for C ≥ 256 (~128 registers each)
_MAX_ROWS = 128


LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


@triton.jit
def _mufu(x, PTX: tl.constexpr):
    """One fp32 PTX instruction ``PTX`` (``op $0, $1;``) per element: a single MUFU op."""
    return tl.inline_asm_elementwise(PTX, "=f,f", [x], dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def _exp2(x, FAST: tl.constexpr):
    """2^x; FAST: one MUFU.EX2 (``ex2.approx.ftz``, ~2 ulp, subnormal results flushed to 0)."""
    if FAST:
        return _mufu(x, "ex2.approx.ftz.f32 $0, $1;")
    else:
        return tl.exp2(x)


@triton.jit
def _exp2_neg_abs(x, FAST: tl.constexpr):
    """2^−|x|; FAST: one MUFU.EX2 with the −|·| folded into its operand (PTX abs and neg
    before ex2, which ptxas turns into operand modifiers; −|x| written as Triton code comes out
    as a separate sign-bit OR)."""
    if FAST:
        return _mufu(x, "{ .reg .f32 t; abs.f32 t, $1; neg.f32 t, t; ex2.approx.ftz.f32 $0, t; }")
    else:
        return tl.exp2(-tl.abs(x))


@triton.jit
def _log2(x, FAST: tl.constexpr):
    """log2(x) for x > 0; FAST: one MUFU.LG2 (``lg2.approx.ftz``, abs. error ~2^-22)."""
    if FAST:
        return _mufu(x, "lg2.approx.ftz.f32 $0, $1;")
    else:
        return tl.log2(x)


@triton.jit
def _rcp(x, FAST: tl.constexpr):
    """1/x; FAST: one MUFU.RCP (``rcp.approx.ftz``, ~1 ulp)."""
    if FAST:
        return _mufu(x, "rcp.approx.ftz.f32 $0, $1;")
    else:
        return 1.0 / x


@triton.jit
def _add_and_add(a0, b0, a1, b1):
    return a0 + a1, b0 + b1


@triton.jit
def _sum2(a, b):
    """Per row: (Σ a, Σ b) in one reduction (one cross-warp exchange)."""
    return tl.reduce((a, b), 1, _add_and_add)


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _group(x, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """(ROWS, BLOCK_C) → (ROWS, BLOCK_C // _LOG_GROUP, _LOG_GROUP): groups of adjacent columns."""
    return tl.reshape(x, [ROWS, BLOCK_C // _LOG_GROUP, _LOG_GROUP])


@triton.jit
def _exp_shifted(zn, m2, FAST: tl.constexpr):
    """e^(zn − m) as 2^(zn·log2 e − m2) (one FFMA, one exp2); 0 where zn = −inf (off N)."""
    return _exp2(zn * LOG2E - m2[:, None], FAST)


@triton.jit
def _margin_terms(z, pos, lse2, FAST: tl.constexpr):
    """x = −t·log2 e = z·log2 e − lse2 on P (+inf elsewhere) and v = 2^−|x| = e^−|t|."""
    x = tl.where(pos, z * LOG2E - lse2[:, None], float("inf"))
    return x, _exp2_neg_abs(x, FAST)


@triton.jit
def _sigmoid(x, v, one_v, FAST: tl.constexpr):
    """σ(t) from x = −t·log2 e, v = e^−|t|: 1/(1 + v) when t ≥ 0, v/(1 + v) otherwise."""
    r = _rcp(one_v, FAST)
    return tl.where(x <= 0.0, r, v * r)


@triton.jit
def _lse_n(m2, s, FAST: tl.constexpr):
    """(N not empty, lse_N·log2 e) per row from m2 = max_N z·log2 e (0 when N is empty) and
    s = Σ_N 2^(z·log2 e − m2): the max negative contributes 2^0 = 1, so s >= 1 iff N ≠ ∅.
    s is NaN when a logit is: then so is lse_N (the test is s != 0, not s > 0, which would
    take the row for one without negatives and return a loss of 0)."""
    has_neg = s != 0.0
    return has_neg, tl.where(has_neg, m2 + _log2(tl.where(has_neg, s, 1.0), FAST), float("-inf"))


@triton.jit
def _grad_coefs(inv_p, sig_sum, s, has_neg, grad_scale):
    """Per row (c_P, c_N) of the gradient u·c_N − σ·c_P: ∂L/∂z_p = −σ(t_p)/|P| and
    ∂L/∂z_n = e^(z_n − m)/s · Σ_p σ(t_p)/|P|, both times the reduction's scale."""
    coef_p = inv_p * grad_scale
    return coef_p, sig_sum * coef_p / tl.where(has_neg, s, 1.0)


@triton.jit
def _positive_terms(
    z, pos, lse2, ROWS: tl.constexpr, BLOCK_C: tl.constexpr, NEED_SIG: tl.constexpr,
    FAST: tl.constexpr,
):  # fmt: skip
    """Per row Σ_p softplus(t_p) (and Σ_p σ(t_p), σ(t) when NEED_SIG), t_p = lse_N − z_p.

    Works in base 2 on x = −t·log2 e = z·log2 e − lse2 (+inf off P): with v = 2^−|x| = e^−|t|,
    softplus(t) = max(t, 0) + ln(1 + v) = ln 2 · (log2(1 + v) − min(x, 0)) and
    σ(t) = 1/(1 + v) when t ≥ 0, v/(1 + v) otherwise. Off P (x = +inf) v = 0: every term is 0
    without a select. The logs are summed as the log of products of _LOG_GROUP factors (each
    in [1, 2], so a product ≤ 2^_LOG_GROUP): one log per group. Σ σ is a row sum of the tile
    itself, not of per-group sums joined to the softplus groups' in one reduction: that joint
    form made Triton 3.6 (the GPU machines' version) move the tile's targets and exponentials
    into the grouped layout through shared memory, a longer loop body (counts in
    benchmarks/results/README.md).
    """
    x, v = _margin_terms(z, pos, lse2, FAST)
    one_v = 1.0 + v
    log_prod = _log2(tl.reduce(_group(one_v, ROWS, BLOCK_C), 2, _mul), FAST)
    sp_g = LN2 * (log_prod - tl.sum(_group(tl.minimum(x, 0.0), ROWS, BLOCK_C), axis=2))
    sp_sum = tl.sum(sp_g, axis=1)
    if NEED_SIG:
        sig = _sigmoid(x, v, one_v, FAST)
        sig_sum = tl.sum(sig, axis=1)
    else:
        sig = v
        sig_sum = sp_sum
    return sp_sum, sig_sum, sig


@triton.jit
def _row_ptrs(ptr, rows, stride_units, ROW_ALIGN: tl.constexpr):
    """(ROWS,) pointers to the rows' first elements; int64 offsets (B·C may exceed 2^31)."""
    return ptr + rows.to(tl.int64) * (stride_units * ROW_ALIGN)


@triton.jit
def _load_raw(
    z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc, Y_BOOL: tl.constexpr,
    EVICT: tl.constexpr,
):  # fmt: skip
    """Load a (ROWS, BLOCK_C) tile as stored: logits, targets and the in-bounds mask.

    Masked entries read y = 1 (y = 2 for bool targets): not in N without a mask of their own;
    :func:`_unpack` keeps them out of P.
    """
    cols64 = cols.to(tl.int64)
    mask = row_mask[:, None] & (cols < C)[None, :]
    z_ptrs = z_rows[:, None] + cols64[None, :] * stride_zc
    z = tl.load(z_ptrs, mask=mask, other=0.0, eviction_policy=EVICT)
    y_ptrs = y_rows[:, None] + cols64[None, :] * stride_yc
    y = tl.load(y_ptrs, mask=mask, other=2 if Y_BOOL else 1, eviction_policy=EVICT)
    return z, y, mask


@triton.jit
def _unpack(z, y, mask, Y_BOOL: tl.constexpr, FAST: tl.constexpr):
    """Logits as fp32, and the positive / negative masks of a raw tile.

    Bool targets are 0/1 bytes and masked entries read 2, so P is y == 1 without the mask
    (one compare per element instead of a compare and a select).
    """
    if Y_BOOL:
        pos = y == 1
    else:
        pos = mask & (y != 0)
    neg = y == 0
    is_bf16: tl.constexpr = z.dtype == tl.bfloat16
    if is_bf16 and FAST:
        # two bf16 per 32-bit word (element 0 in the low half) to fp32: a shift and a mask,
        # where Triton's conversion takes a shift for the low half and a byte permute plus a
        # shift for the high half
        z = tl.inline_asm_elementwise(
            "{ shl.b32 $0, $2, 16; and.b32 $1, $2, -65536; }", "=r,=r,r", [z],
            dtype=tl.float32, is_pure=True, pack=2,
        )
    else:
        z = z.to(tl.float32)
    if is_bf16:
        # as losses._common.prepare: bf16 clamped to the fp16 range (its 3.4e38 would overflow
        # lse_N − z_p); the gradient at the clamped point is the one written. NaN stays NaN
        # (as torch.clamp): plain min/max would turn it into −65504, a finite loss
        z = tl.clamp(z, -65504.0, 65504.0, propagate_nan=tl.PropagateNan.ALL)
    return z, pos, neg


@triton.jit
def _load_tile(
    z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc, Y_BOOL: tl.constexpr,
    EVICT: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    """Load a (ROWS, BLOCK_C) tile: logits as fp32, the positive / negative masks, the mask."""
    z, y, mask = _load_raw(z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc, Y_BOOL, EVICT)
    z, pos, neg = _unpack(z, y, mask, Y_BOOL, FAST)
    return z, pos, neg, mask


@triton.jit
def _tile_loss_single(
    z_raw, y_raw, mask, g_rows, cols, C, grad_scale, ROWS: tl.constexpr, BLOCK_C: tl.constexpr,
    Y_BOOL: tl.constexpr, WRITE_GRAD: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    """Per-row loss of a tile of whole rows held in registers; writes their gradient."""
    NEG_INF: tl.constexpr = float("-inf")
    z, pos, neg = _unpack(z_raw, y_raw, mask, Y_BOOL, FAST)
    # lse_N in base 2: m = max_N z, s = Σ_N 2^(z·log2 e − m·log2 e); |P|
    zn = tl.where(neg, z, NEG_INF)
    m = tl.max(zn, axis=1)
    m2 = tl.where(m == NEG_INF, 0.0, m) * LOG2E
    u = _exp_shifted(zn, m2, FAST)  # e^(z_n − m) on N, 0 elsewhere
    if Y_BOOL:
        # y is 0/1 (bool bytes): |P| = Σ y, less the masked columns (read as y = 2)
        s, y_sum = _sum2(u, y_raw.to(tl.int32))
        n_pos = (y_sum - 2 * (BLOCK_C - C)).to(tl.float32)
    else:
        s, n_pos = _sum2(u, tl.where(pos, 1.0, 0.0))
    has_neg, lse2 = _lse_n(m2, s, FAST)
    inv_p = 1.0 / tl.maximum(n_pos, 1.0)
    # Σ_p softplus(t_p), Σ_p σ(t_p) with t_p = lse_N − z_p
    sp_sum, sig_sum, sig = _positive_terms(z, pos, lse2, ROWS, BLOCK_C, WRITE_GRAD, FAST)
    if WRITE_GRAD:
        # u = 0 on P and σ = 0 on N: one expression for both
        coef_p, coef_n = _grad_coefs(inv_p, sig_sum, s, has_neg, grad_scale)
        g = u * coef_n[:, None] - sig * coef_p[:, None]
        tl.store(g_rows[:, None] + cols[None, :], g.to(g_rows.dtype.element_ty), mask=mask)
    return sp_sum * inv_p


@triton.jit
def _tile_loss_loop(
    z_rows, y_rows, g_rows, row_mask, cols, C, stride_zc, stride_yc, grad_scale,
    ROWS: tl.constexpr, BLOCK_C: tl.constexpr, Y_BOOL: tl.constexpr, EVICT: tl.constexpr,
    WRITE_GRAD: tl.constexpr, FAST: tl.constexpr, NUM_STAGES: tl.constexpr,
):  # fmt: skip
    """Per-row loss of a tile of rows longer than BLOCK_C: the 3-pass block loop (each pass
    software-pipelined over NUM_STAGES chunks when NUM_STAGES > 1)."""
    NEG_INF: tl.constexpr = float("-inf")
    # ---- pass 1: online lse_N in base 2 (running max · log2 e, rescaled sum) and |P| --------
    m2 = tl.full([ROWS], NEG_INF, tl.float32)
    s = tl.zeros([ROWS], tl.float32)
    n_pos = tl.zeros([ROWS], tl.float32)
    for start in tl.range(0, C, BLOCK_C, num_stages=NUM_STAGES):
        zc, pc, nc, _ = _load_tile(
            z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc, Y_BOOL, EVICT, FAST
        )
        zn = tl.where(nc, zc, NEG_INF)
        m2_new = tl.maximum(m2, tl.max(zn, axis=1) * LOG2E)
        m2_safe = tl.where(m2_new == NEG_INF, 0.0, m2_new)
        s_chunk, n_chunk = _sum2(_exp_shifted(zn, m2_safe, FAST), tl.where(pc, 1.0, 0.0))
        s = s * _exp2(m2 - m2_safe, FAST) + s_chunk
        n_pos += n_chunk
        m2 = m2_new
    m2 = tl.where(m2 == NEG_INF, 0.0, m2)
    has_neg, lse2 = _lse_n(m2, s, FAST)
    inv_p = 1.0 / tl.maximum(n_pos, 1.0)
    # ---- pass 2: Σ_p softplus(t_p), Σ_p σ(t_p) ----------------------------------------------
    loss_acc = tl.zeros([ROWS], tl.float32)
    sig_acc = tl.zeros([ROWS], tl.float32)
    for start in tl.range(0, C, BLOCK_C, num_stages=NUM_STAGES):
        zc, pc, nc, _ = _load_tile(
            z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc, Y_BOOL, EVICT, FAST
        )
        sp_sum, sig_sum, _ = _positive_terms(zc, pc, lse2, ROWS, BLOCK_C, WRITE_GRAD, FAST)
        loss_acc += sp_sum
        sig_acc += sig_sum
    # ---- pass 3: the gradient ----------------------------------------------------------------
    if WRITE_GRAD:
        coef_p, coef_n = _grad_coefs(inv_p, sig_acc, s, has_neg, grad_scale)
        for start in tl.range(0, C, BLOCK_C, num_stages=NUM_STAGES):
            zc, pc, nc, maskc = _load_tile(
                z_rows, y_rows, row_mask, start + cols, C, stride_zc, stride_yc, Y_BOOL, EVICT, FAST
            )
            uc = _exp_shifted(tl.where(nc, zc, NEG_INF), m2, FAST)
            x, v = _margin_terms(zc, pc, lse2, FAST)
            g = uc * coef_n[:, None] - _sigmoid(x, v, 1.0 + v, FAST) * coef_p[:, None]
            g_ptrs = g_rows[:, None] + (start + cols)[None, :]
            tl.store(g_ptrs, g.to(g_rows.dtype.element_ty), mask=maskc)
    return loss_acc * inv_p


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
    FAST: tl.constexpr,  # MUFU approximations via inline PTX (False under the interpreter)
    Y_BOOL: tl.constexpr,  # targets are bool bytes (0/1): masked entries read 2, P is y == 1
    # (and |P| is Σ y in the single-block path)
    EVICT: tl.constexpr,  # eviction policy of the logits/targets loads ("" or "evict_first")
    NUM_STAGES: tl.constexpr,  # > 1: loads software-pipelined through shared memory (cp.async),
    # the next NUM_STAGES − 1 tiles (single block) or chunks (block loop) in flight
):
    C = c_units * ROW_ALIGN
    cols = tl.arange(0, BLOCK_C)
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    program_sum = tl.zeros([ROWS], tl.float32)  # REDUCE: Σ of this program's rows' loss
    # grid-strided over row tiles: a grid of a few programs per SM, so that a reducing launch
    # takes a few thousand tickets, not one per tile. The block loop pipelines its own passes.
    TILE_STAGES: tl.constexpr = NUM_STAGES if SINGLE else 1
    for tile in tl.range(pid, tl.cdiv(B, ROWS), n_programs, num_stages=TILE_STAGES):
        rows = tile * ROWS + tl.arange(0, ROWS)
        row_mask = rows < B
        z_rows = _row_ptrs(z_ptr, rows, zb_units, ROW_ALIGN)
        y_rows = _row_ptrs(y_ptr, rows, yb_units, ROW_ALIGN)
        g_rows = _row_ptrs(grad_ptr, rows, gb_units, ROW_ALIGN)
        if SINGLE:
            z_raw, y_raw, mask = _load_raw(
                z_rows, y_rows, row_mask, cols, C, stride_zc, stride_yc, Y_BOOL, EVICT
            )
            loss = _tile_loss_single(
                z_raw, y_raw, mask, g_rows, cols, C, grad_scale, ROWS, BLOCK_C, Y_BOOL, WRITE_GRAD,
                FAST,
            )  # fmt: skip
        else:
            loss = _tile_loss_loop(
                z_rows, y_rows, g_rows, row_mask, cols, C, stride_zc, stride_yc, grad_scale,
                ROWS, BLOCK_C, Y_BOOL, EVICT, WRITE_GRAD, FAST, NUM_STAGES,
            )  # fmt: skip
        if REDUCE:
            program_sum += tl.where(row_mask, loss, 0.0)
        else:
            tl.store(loss_ptr + rows, loss, mask=row_mask)
    if REDUCE:
        total = tl.sum(program_sum, axis=0)
        _reduce_programs(total, loss_ptr, partial_ptr, counter_ptr, grad_scale, RBLOCK)


@triton.jit
def _reduce_programs(value, out_ptr, partial_ptr, counter_ptr, scale, RBLOCK: tl.constexpr):
    """out = scale · Σ over all programs of their ``value``, inside the launch.

    Each program stores its value, then takes a ticket from the counter; the program that
    takes the last ticket adds the values in program order (a deterministic sum for a given
    grid, unlike float atomics), writes the scalar and resets the counter to 0 for the next
    launch. The barriers order every thread's store before the ticket (release) and the reads
    of the partials after it (acquire); the partials are read past L1 (.cg).
    """
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    tl.store(partial_ptr + pid, value)
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
    warps_per_sm: int = 32  # grid: programs of num_warps warps, this many warps per SM
    evict_first: bool = False  # load logits and targets with the evict-first L2 policy (no
    # measurable difference in the sweeps so far; kept as a sweep knob)
    num_stages: int = 1  # > 1: Triton's software pipeliner copies the next num_stages − 1
    # tiles (block loop: chunks) into shared memory (cp.async) while this one is computed.
    # Not yet timed on a GPU: a sweep knob (python -m benchmarks.sweep), 1 by default
    maxnreg: int | None = None  # cap on registers per thread (ptxas .maxnreg; may spill):
    # e.g. 128 keeps 16 one-warp programs resident per SM when pipelining wants 150-160


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
    if block_c >= 256:
        # rows of ≥ 256 columns: 32 values per thread, 1024 columns per warp (up to C=1024 a
        # warp holds whole rows: row reductions are warp shuffles, no shared memory); one
        # row per one-warp program and 16 warps per SM were the fastest in the sweep
        # (python -m benchmarks.sweep; benchmarks/results/README.md, "Launch heuristics")
        rows = max(1, _WARP_TILE_ELEMS // block_c)
        num_warps = max(1, block_c // _WARP_TILE_ELEMS)
        return LaunchConfig(rows, block_c, True, num_warps, warps_per_sm=_WARPS_PER_SM)
    # short rows: tiles of 2048 elements, 8 values per thread
    rows = max(1, min(_MAX_ROWS, _TILE_ELEMS // block_c))
    num_warps = min(32, max(4, rows * block_c // (32 * 8)))
    return LaunchConfig(rows=rows, block_c=block_c, single=True, num_warps=num_warps)


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor, reduction: str) -> None:
    check_reduction(reduction)
    if logits.dim() != 2:
        raise ValueError(f"Expected `logits` of shape (B, C) but got {tuple(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(
            f"Expected `targets` of shape {tuple(logits.shape)} (as logits) but got {tuple(targets.shape)}"
        )
    if logits.dtype not in KERNEL_DTYPES:
        raise ValueError(
            f"Expected `logits` dtype to be one of {[str(d) for d in KERNEL_DTYPES]} but got {logits.dtype}"
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

    "mean" and "sum" are reduced inside the launch (see :func:`_reduce_programs`), so the value
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
    n_programs = _num_programs(device, cfg, triton.cdiv(B, cfg.rows))
    scale = 1.0 / B if reduction == "mean" else 1.0
    align = _row_align(C, logits.stride(0), y.stride(0), grad.stride(0) if need_grad else 0)
    if reduce:
        out = torch.empty((), dtype=torch.float32, device=device)
        counter, partials = _reduce_workspace(device, n_programs)
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
        REDUCE=reduce, RBLOCK=_RBLOCK, ROW_ALIGN=align, FAST=not INTERPRETED,
        Y_BOOL=targets.dtype == torch.bool, EVICT="evict_first" if cfg.evict_first else "",
        NUM_STAGES=cfg.num_stages, num_warps=cfg.num_warps, maxnreg=cfg.maxnreg,
    )  # fmt: skip
    return out, grad


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


#: Programs of a forward launch under the interpreter, at most (tests lower it to run
#: several row tiles per program)
INTERPRETER_PROGRAMS = 64


def _num_programs(device: torch.device, cfg: LaunchConfig, n_tiles: int) -> int:
    """Grid of a forward launch: ``cfg.warps_per_sm`` warps per SM, at most one per tile."""
    if device.type != "cuda":
        most = INTERPRETER_PROGRAMS
    else:
        most = max(1, cfg.warps_per_sm // cfg.num_warps) * _sm_count(device.index or 0)
    # as many programs as keep every program at the same number of tiles (no tail of programs
    # with one tile more), at most `most`
    return triton.cdiv(n_tiles, triton.cdiv(n_tiles, most))


def _scale_programs(device: torch.device) -> int:
    """Programs of a scale launch: 4 per SM (8 under the interpreter)."""
    if device.type != "cuda":
        return 8
    return 4 * _sm_count(device.index or 0)


def _row_align(*numbers: int) -> int:
    """The largest power of two ≤ 16 dividing every number (0 is divided by anything)."""
    align = 16
    while any(n % align for n in numbers):
        align //= 2
    return align


_RBLOCK = 1024  # partials summed per step by the last program of a reducing launch
_workspaces: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _reduce_workspace(device: torch.device, n_programs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ticket counter, partials) of reducing launches on ``device``'s current stream.

    The int32 counter is zeroed once, when first made; every launch leaves it at 0 again (its
    last program resets it), so no per-launch memset is needed. The fp32 partials (one per
    program) are written before they are read within a launch. Both are kept per stream, so
    that launches that may run concurrently never share them, and reused across launches (no
    allocation per call); the partials grow when a launch has more programs.
    """
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device.type, device.index, stream)
    workspace = _workspaces.get(key)
    if workspace is None or workspace[1].numel() < n_programs:
        counter = (
            workspace[0] if workspace else torch.zeros((), dtype=torch.int32, device=device)
        )
        partials = torch.empty(max(n_programs, 1024), dtype=torch.float32, device=device)
        workspace = _workspaces[key] = (counter, partials)
    return workspace


def _ticket_counter(device: torch.device) -> torch.Tensor:
    """The ticket counter of reducing launches on ``device``'s current stream (0 between them)."""
    return _reduce_workspace(device, 0)[0]


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
