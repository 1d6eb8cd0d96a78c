"""MSML throughput: naive pairwise vs factorised eager vs torch.compile(factorised) vs Triton.

Grid (SPEC §2): C ∈ {14, 80, 1000, 10000} × B ∈ {256, 4096, 65536}, forward ("fwd") and
forward + backward ("fwd_bwd"). Logits bf16 on CUDA, fp32 on CPU; targets bool.
Bytes per cell = B·C·(logit + target + gradient bytes), the gradient only for fwd_bwd.
GB/s and % of peak are recorded only for cells of at least 4× the L2 size (conftest.above_l2).
On CUDA a timed round is several back-to-back calls and one sync (``conftest.calls_per_round``); the
table and the recorded GB/s use the time per call (``extra_info["calls_per_round"]``). That
wall time includes the host's share (Python, autograd, launches) where it exceeds the device's;
on CUDA each cell also records its device time per call, from CUDA-graph replays
(``conftest.graph_seconds_per_call``), with its own GB/s and % of peak.
The baselines are the PyTorch forms of ``losses.msml`` — the same references the kernel
tests use: "factorised" is ``msml_factorised`` (gradient written by the forward, the default
on CPU), "compiled" is ``torch.compile(msml_factorised_autograd)``, the plain autograd form.

Environment: ``MLBENCH_BENCH_FULL=1`` runs every cell on CPU too; by default a CPU run
skips the cells that take minutes there (B·C > 2**22, naive B·C² > 2**25).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import (
    FULL_GRID,
    bench_budget,
    bench_inputs,
    cell_bytes,
    cpu_size_skip,
    device_time,
    timed_round,
)
from benchmarks.launches import make_step
from losses.msml import msml_factorised, msml_factorised_autograd, msml_naive

C_GRID = [14, 80, 1000, 10000]
B_GRID = [256, 4096, 65536]
VARIANTS = ["naive", "factorised", "compiled", "triton"]
MODES = ["fwd", "fwd_bwd"]
# live (B, C, C) fp32 temporaries of the naive form's forward + backward (measured: ~4.4)
NAIVE_PAIR_TENSORS = 5

CPU_MAX_PAIR_ELEMENTS = 2**25  # B·C² of the naive CPU cells run by default

_compiled = {}


def _loss_fn(variant: str):
    if variant == "naive":
        return msml_naive
    if variant == "factorised":
        return msml_factorised
    if variant == "compiled":
        if "fn" not in _compiled:
            # inductor fuses the plain autograd form (forward and backward graphs)
            _compiled["fn"] = torch.compile(msml_factorised_autograd)
        return _compiled["fn"]
    from losses._triton.msml import msml_triton

    return msml_triton


def _skip_reason(variant: str, B: int, C: int, device) -> str | None:
    if variant == "triton":
        from losses._triton import is_available

        if not is_available():
            return "triton is not installed"
        if device.type != "cuda":
            return "the Triton kernel runs on CUDA only (its CPU interpreter is no speed measure)"
    if variant == "naive":
        pair_bytes = NAIVE_PAIR_TENSORS * B * C * C * 4
        if pair_bytes > device.memory_bytes // 2:
            return f"naive needs ~{pair_bytes / 2**30:.0f} GiB of (B, C, C) temporaries"
    if (
        device.type == "cpu"
        and not FULL_GRID
        and variant == "naive"
        and B * C * C > CPU_MAX_PAIR_ELEMENTS
    ):
        return f"naive B·C² = {B * C * C} > 2**25 on CPU (set MLBENCH_BENCH_FULL=1)"
    return cpu_size_skip(B, C, device)


@bench_budget
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("B", B_GRID)
@pytest.mark.parametrize("C", C_GRID)
def test_msml(benchmark, device, bench_record, C, B, variant, mode):
    reason = _skip_reason(variant, B, C, device)
    if reason:
        pytest.skip(reason)
    fn = _loss_fn(variant)
    logits, targets = bench_inputs(B, C, device)
    call = make_step(fn, logits, targets, mode)
    step, calls = timed_round(call, device)  # the warm-up compiles triton / torch.compile
    benchmark.group = f"msml C={C} B={B} {mode}"
    benchmark(step)
    nbytes = cell_bytes(logits, targets, mode)
    device_seconds, device_note = device_time(call, device)
    bench_record(
        benchmark, device, nbytes=nbytes, fn=call, calls=calls, device_seconds=device_seconds,
        device_time_note=device_note,
        loss="msml", variant=variant, mode=mode, B=B, C=C, dtype=str(logits.dtype).split(".")[-1],
    )  # fmt: skip
