"""MSML throughput: naive pairwise vs factorised eager vs torch.compile(factorised) vs Triton.

Grid (SPEC §2): C ∈ {14, 80, 1000, 10000} × B ∈ {256, 4096, 65536}, forward ("fwd") and
forward + backward ("fwd_bwd"). Logits bf16 on CUDA, fp32 on CPU; targets bool.
Bytes per cell = B·C·(logit + target + gradient bytes), the gradient only for fwd_bwd.
GB/s and % of peak are recorded only for cells of at least 4× the L2 size (conftest.above_l2).
On CUDA a timed round is several back-to-back calls and one sync (``_calls_per_round``); the
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

import os
import time

import pytest
import torch

from benchmarks.conftest import graph_seconds_per_call
from benchmarks.launches import make_step
from losses.msml import msml_factorised, msml_factorised_autograd, msml_naive

C_GRID = [14, 80, 1000, 10000]
B_GRID = [256, 4096, 65536]
VARIANTS = ["naive", "factorised", "compiled", "triton"]
MODES = ["fwd", "fwd_bwd"]
# live (B, C, C) fp32 temporaries of the naive form's forward + backward (measured: ~4.4)
NAIVE_PAIR_TENSORS = 5

FULL_GRID = os.environ.get("MLBENCH_BENCH_FULL") == "1"
CPU_MAX_ELEMENTS = 2**22  # B·C of the CPU cells run by default
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
    if device.type == "cpu" and not FULL_GRID:
        if B * C > CPU_MAX_ELEMENTS:
            return f"B·C = {B * C} > 2**22 on CPU (set MLBENCH_BENCH_FULL=1 to run it)"
        if variant == "naive" and B * C * C > CPU_MAX_PAIR_ELEMENTS:
            return f"naive B·C² = {B * C * C} > 2**25 on CPU (set MLBENCH_BENCH_FULL=1)"
    return None


def _inputs(B: int, C: int, device):
    gen = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    logits = torch.randn(B, C, generator=gen).to(device.type, dtype)
    targets = (torch.rand(B, C, generator=gen) < 0.1).to(device.type)
    return logits, targets


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("B", B_GRID)
@pytest.mark.parametrize("C", C_GRID)
def test_msml(benchmark, device, bench_record, C, B, variant, mode):
    reason = _skip_reason(variant, B, C, device)
    if reason:
        pytest.skip(reason)
    fn = _loss_fn(variant)
    logits, targets = _inputs(B, C, device)
    call = make_step(fn, logits, targets, mode)
    call()  # warm-up: compiles (triton, torch.compile), allocator caches
    calls = _calls_per_round(call, device)

    def step():
        for _ in range(calls):
            call()
        device.sync()

    benchmark.group = f"msml C={C} B={B} {mode}"
    benchmark(step)
    grad_bytes = logits.element_size() if mode == "fwd_bwd" else 0
    nbytes = B * C * (logits.element_size() + targets.element_size() + grad_bytes)
    device_seconds, device_note = None, None
    if device.type == "cuda":
        try:
            device_seconds = graph_seconds_per_call(call)
        except RuntimeError as err:  # a variant that cannot be captured keeps its wall time
            device_note = f"CUDA graph capture failed: {err}"[:300]
    bench_record(
        benchmark, device, nbytes=nbytes, fn=call, calls=calls, device_seconds=device_seconds,
        device_time_note=device_note,
        loss="msml", variant=variant, mode=mode, B=B, C=C, dtype=str(logits.dtype).split(".")[-1],
    )  # fmt: skip


ROUND_SECONDS = 2e-3  # CUDA: calls per timed round, so that one sync ends ≥ ~2 ms of work
MAX_CALLS = 20


def _calls_per_round(call, device) -> int:
    """1 on CPU. On CUDA, enough back-to-back calls per round (one sync at its end) that the
    device stays busy: the launch and sync latency of a single call would otherwise be timed
    with it (METHOD: time device work, not the host's round trip)."""
    if device.type != "cuda":
        return 1
    device.sync()
    start = time.perf_counter()
    call()
    device.sync()
    once = time.perf_counter() - start
    return max(1, min(MAX_CALLS, round(ROUND_SECONDS / max(once, 1e-9))))
