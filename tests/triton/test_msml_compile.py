"""Compile-only: every kernel variant builds to cubin for sm_80 and sm_90 without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget(...))`` runs the whole pipeline
(TTIR → TTGIR → LLVM → PTX → cubin with the ptxas shipped in the triton wheel).
The signatures mirror what the JIT derives at launch: a column stride of 1 is
specialised to a constant, as the JIT does for contiguous rows, and pointers are marked
16-byte aligned, as the JIT marks PyTorch's allocations.
"""

from __future__ import annotations

import pytest

from benchmarks import sass as sass_tool

pytestmark = pytest.mark.triton

ARCHS = [80, 90]
LOGIT_TYPES = ["fp32", "fp16", "bf16"]
# (logits type, C): C picks the launch shape — many rows per program (14), whole rows
# (1000, 8192: the largest single block) or the block loop (100000); every dtype on the
# two extremes, bf16 on all.
FWD_CASES = [(t, C) for t in LOGIT_TYPES for C in (14, 100_000)] + [("bf16", 1000), ("bf16", 8192)]


@pytest.fixture(scope="module")
def compile_kernel(kmod):
    if kmod.INTERPRETED:
        pytest.skip("kernels were built by the interpreter (TRITON_INTERPRET=1)")
    return sass_tool.compile_kernel


def build_fwd(kmod, compile_kernel, arch, C, logit_type, **kwargs):
    """The forward kernel for C with the heuristic's shape (``benchmarks.sass.build_fwd``)."""
    return sass_tool.build_fwd(kmod, C, logit_type, arch=arch, **kwargs)


def assert_cubin(kernel, arch):
    assert f".target sm_{arch}" in kernel.asm["ptx"]
    assert len(kernel.asm["cubin"]) > 0


@pytest.mark.parametrize(("logit_type", "C"), FWD_CASES)
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_with_gradient_compiles(kmod, compile_kernel, arch, logit_type, C):
    assert_cubin(build_fwd(kmod, compile_kernel, arch, C, logit_type), arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "variant",
    [
        {"C": 14, "grad": False},
        {"C": 100_000, "grad": False},
        {"C": 14, "target_type": "fp32"},
        {"C": 14, "target_type": "i64"},
        {"C": 1000, "strided": True},
        {"C": 100_000, "strided": True},
        {"C": 14, "reduce": False},
        {"C": 100_000, "reduce": False},
    ],
    ids=[
        "value-small", "value-loop", "float-targets", "int64-targets", "strided", "strided-loop",
        "per-row-small", "per-row-loop",
    ],  # fmt: skip
)
def test_forward_variants_compile(kmod, compile_kernel, arch, variant):
    assert_cubin(build_fwd(kmod, compile_kernel, arch, logit_type="bf16", **variant), arch)


@pytest.mark.parametrize("logit_type", LOGIT_TYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_scale_kernel_compiles(kmod, compile_kernel, arch, logit_type):
    sig = {"grad_ptr": f"*{logit_type}", "go_ptr": "*fp32", "stride_go": "i32", "B": "i32",
           "c_units": "i32", "gb_units": "i32"}  # fmt: skip
    kernel = compile_kernel(
        kmod._scale_rows_kernel, sig, {"ROWS": 2, "BLOCK_C": 1024, "ROW_ALIGN": 8}, arch, num_warps=4
    )
    assert_cubin(kernel, arch)


def test_addresses_are_64_bit(kmod, compile_kernel):
    # row * stride is computed in int64, so B * C beyond 2**31 elements is addressed right
    ttir = build_fwd(kmod, compile_kernel, 90, 14, "bf16").asm["ttir"]
    assert "arith.extsi" in ttir and "arith.muli" in ttir and "i64" in ttir
    assert any("arith.muli" in line and "i64" in line for line in ttir.splitlines())


@pytest.mark.parametrize(("C", "width"), [(1000, "v4.b32"), (10000, "v4.b32"), (14, None)])
def test_aligned_rows_load_in_wide_vectors(kmod, compile_kernel, C, width):
    """Rows whose stride is a multiple of 8 bf16 elements start 16-byte aligned: the loads of
    the logits and the stores of the gradient are 16 bytes wide (C=14 rows cannot be)."""
    ptx = build_fwd(kmod, compile_kernel, 90, C, "bf16").asm["ptx"]
    if width is None:
        assert "ld.global.v4.b32" not in ptx
    else:
        assert f"ld.global.{width}" in ptx or f"ld.global.nc.{width}" in ptx
        assert f"st.global.{width}" in ptx


@pytest.mark.parametrize("C", [1000, 100_000])
def test_exp_log_and_reciprocal_are_single_mufu_instructions(kmod, compile_kernel, C):
    """The compiled kernel's maths: ex2/lg2/rcp.approx.ftz (one MUFU instruction each), no
    IEEE division, no non-ftz exp (extra range fix-ups); one exp2 per element on N and one on
    P, so at most two per element in the single-block loop."""
    ptx = build_fwd(kmod, compile_kernel, 90, C, "bf16").asm["ptx"]
    for op in ("ex2.approx.ftz.f32", "lg2.approx.ftz.f32", "rcp.approx.ftz.f32"):
        assert op in ptx
    assert "div.rn.f32" not in ptx and "ex2.approx.f32" not in ptx
    if C == 1000:  # one row of 1024 columns per warp: 32 elements per thread
        assert ptx.count("ex2.approx.ftz.f32") <= 2 * 32 + 2


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C", [14, 1000, 100_000])
def test_pipelined_loads_go_through_shared_memory(kmod, compile_kernel, arch, C):
    """num_stages > 1: the tile loop (single block) or each pass of the block loop is
    software-pipelined: its loads become cp.async copies into shared memory, more of them with
    more stages; num_stages = 1 (the default) loads into registers."""
    kernels = {n: build_fwd(kmod, compile_kernel, arch, C, "bf16", num_stages=n) for n in (1, 2, 3)}
    copies = {n: k.asm["ptx"].count("cp.async.cg.shared.global") + k.asm["ptx"].count(
        "cp.async.ca.shared.global") for n, k in kernels.items()}  # fmt: skip
    assert copies[1] == 0 and 0 < copies[2] < copies[3]
    assert all(kernels[n].metadata.shared > 0 for n in (2, 3))  # the copies' buffers
    for kernel in kernels.values():
        assert_cubin(kernel, arch)


def test_register_cap_reaches_ptxas(kmod, compile_kernel):
    """LaunchConfig.maxnreg: the PTX entry carries .maxnreg (which ptxas keeps to, spilling if
    it must: the register and spill counts are in benchmarks/results/README.md), and the
    kernel still builds."""
    capped = build_fwd(kmod, compile_kernel, 90, 1000, "bf16", num_stages=2, maxnreg=128)
    assert ".maxnreg 128" in capped.asm["ptx"]
    assert_cubin(capped, 90)
    free = build_fwd(kmod, compile_kernel, 90, 1000, "bf16", num_stages=2)
    assert ".maxnreg" not in free.asm["ptx"]


@pytest.mark.parametrize("C", [14, 1000])
def test_tiles_stay_in_one_register_layout(kmod, compile_kernel, C):
    """No layout conversion of a whole (ROWS, BLOCK_C) tile: such a conversion goes through
    shared memory inside the tile loop. (Summing σ per group of 8 columns, joined to the
    softplus groups in one reduction, made Triton 3.6 convert the targets and exponentials;
    the cost is in benchmarks/results/README.md.)"""
    cfg = kmod._launch_config(C)
    ttgir = build_fwd(kmod, compile_kernel, 90, C, "bf16").asm["ttgir"]
    tile = f"tensor<{cfg.rows}x{cfg.block_c}x"
    converts = [line for line in ttgir.splitlines() if "ttg.convert_layout" in line]
    assert not [line for line in converts if tile in line.split("->")[0]]


@pytest.mark.parametrize("arch", ARCHS)
def test_bf16_clamp_keeps_nan(kmod, compile_kernel, arch):
    """The ±65504 clamp of bf16 logits propagates NaN: PTX min/max .NaN (sm_80), or on sm_90
    one min.NaN.xorsign.abs per element, the whole clamp in one instruction. Plain min/max
    return the other operand, so they would turn a NaN logit into a finite loss."""
    ptx = build_fwd(kmod, compile_kernel, arch, 1000, "bf16").asm["ptx"]
    lines = [line.strip() for line in ptx.splitlines()]
    if arch >= 90:
        assert sum(line.startswith("min.NaN.xorsign.abs.f32") for line in lines) == 32
    else:
        bounds = [line for line in lines if "0f477FE000" in line or "0fC77FE000" in line]
        assert len(bounds) == 64 and all(".NaN." in line for line in bounds)


@pytest.mark.parametrize(("C", "budget"), [(1000, 30.5), (14, 75.0)])
def test_tile_loop_instruction_budget(kmod, compile_kernel, C, budget):
    """Static size of the sm_90 tile loop, in SASS instructions per element a thread holds: a
    guard (~5% above the counts of the current kernel, which benchmarks/results/README.md
    lists per Triton version) against code-generation regressions such as a layout conversion
    through shared memory or a lost MUFU operand modifier. C=14 has the higher budget per
    element: 8 elements per thread (16 columns for 14 classes), and the row reductions
    shared by few elements."""
    cfg = kmod._launch_config(C)
    try:
        loop = sass_tool.tile_loop(sass_tool.sass(build_fwd(kmod, compile_kernel, 90, C, "bf16")))
    except FileNotFoundError as err:
        pytest.skip(f"cannot read SASS: {err}")
    per_thread = cfg.rows * cfg.block_c / (32 * cfg.num_warps)
    assert len(loop) / per_thread <= budget, len(loop)
    # P side: 2^−|x| is one MUFU.EX2 whose −|·| is an operand modifier, no separate sign-bit OR
    assert sum("MUFU.EX2" in ins and "-|R" in ins for ins in loop) == per_thread


def test_bf16_unpack_pairs_logits_with_their_targets(kmod, compile_kernel):
    """The inline-PTX unpack of two bf16 logits per 32-bit word gives element 0 (low half)
    first: follow each word's two outputs through the clamp to the select that masks
    negatives, and check that the select's target byte is the matching one (an even byte of
    the target word for the low half, the next byte for the high half)."""
    import re

    ptx = build_fwd(kmod, compile_kernel, 90, 1000, "bf16").asm["ptx"]

    def uses(reg, pattern):
        return re.findall(pattern.replace("REG", re.escape(reg)), ptx)

    def target_byte(out_reg):
        (clamped,) = uses(out_reg, r"min\.NaN\.xorsign\.abs\.f32\s+(%r\d+), REG,")
        (pred,) = uses(clamped, r"selp\.f32\s+%r\d+, REG, 0fFF800000, (%p\d+);")
        (byte_reg,) = uses(pred, r"setp\.eq\.b32\s+REG, (%r\d+), 0;")
        (selector,) = re.findall(rf"prmt\.b32\s+{re.escape(byte_reg)}, %r\d+, 0, 0x777([0-3])U;", ptx)
        return int(selector)

    words = re.findall(r"shl\.b32 (%r\d+), (%r\d+), 16; and\.b32 (%r\d+), \2, -65536;", ptx)
    assert len(words) == 16  # 32 logits per thread
    for low, _, high in words:
        assert target_byte(low) % 2 == 0 and target_byte(high) == target_byte(low) + 1


def test_sass_tool_prints_the_kernel_size(kmod, compile_kernel, capsys):
    """python -m benchmarks.sass: the static size of the kernel, on a machine without a GPU."""
    try:
        assert sass_tool.main(["--C", "1000", "--stages", "1", "2"]) == 0
    except FileNotFoundError as err:
        pytest.skip(f"cannot read SASS: {err}")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("C=1000")]
    assert len(lines) == 2 and all("/element" in line and "registers" in line for line in lines)
    assert "stages=2" in lines[1] and "3072 B shared" in lines[1]
