"""Shared pieces of the loss benchmarks: device, peak bandwidth, GB/s, peak memory."""

from __future__ import annotations

import os
import statistics
import time
import weakref
from dataclasses import dataclass

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# A CPU run skips the cells that take minutes there unless MLBENCH_BENCH_FULL=1 (every
# benchmark file follows this convention).
FULL_GRID = os.environ.get("MLBENCH_BENCH_FULL") == "1"
CPU_MAX_ELEMENTS = 2**22  # B·C of the CPU cells run by default

H100_SXM_PEAK_BYTES_S = 3.35e12  # HBM3, H100 SXM5 datasheet
H200_PEAK_BYTES_S = 4.8e12  # HBM3e, H200 (SXM and NVL) datasheet


@dataclass(frozen=True)
class Device:
    type: str  # "cuda" | "cpu"
    name: str
    peak_bytes_s: float | None  # None: no published peak used for this device
    memory_bytes: int
    l2_bytes: int | None = None  # None: unknown (CPU)

    def sync(self) -> None:
        if self.type == "cuda":
            torch.cuda.synchronize()


def peak_bytes_s(name: str) -> float | None:
    """Published peak memory bandwidth of the CUDA device called ``name``, or None.

    3.35 TB/s is the H100 SXM figure (reported as e.g. "NVIDIA H100 80GB HBM3"); the PCIe
    (2.0 TB/s) and NVL (3.9 TB/s) cards also say "H100", and like every other card get None
    rather than a wrong number. Every H200 ("NVIDIA H200", "NVIDIA H200 NVL") has 4.8 TB/s.
    """
    if "H100" in name and not any(other in name for other in ("PCIe", "NVL")):
        return H100_SXM_PEAK_BYTES_S
    if "H200" in name:
        return H200_PEAK_BYTES_S
    return None


@pytest.fixture(scope="session")
def device() -> Device:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Device(
            "cuda", props.name, peak_bytes_s(props.name), props.total_memory, props.L2_cache_size
        )
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return Device("cpu", "cpu", None, pages)


def cpu_size_skip(B: int, C: int, device: Device) -> str | None:
    """Why a (B, C) cell is skipped on this device by default, or None to run it."""
    if device.type == "cpu" and not FULL_GRID and B * C > CPU_MAX_ELEMENTS:
        return f"B·C = {B * C} > 2**22 on CPU (set MLBENCH_BENCH_FULL=1 to run it)"
    return None


def bench_inputs(B: int, C: int, device: Device) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (B, C) logits (bf16 on CUDA, fp32 on CPU) and bool targets with 10% positives
    (about the prevalence of a ChestX-ray14 finding)."""
    gen = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    logits = torch.randn(B, C, generator=gen).to(device.type, dtype)
    targets = (torch.rand(B, C, generator=gen) < 0.1).to(device.type)
    return logits, targets


def cell_bytes(logits: torch.Tensor, targets: torch.Tensor, mode: str) -> int:
    """Bytes a cell moves at least (SPEC §2): B·C·(logit + target + gradient bytes), the
    gradient only for "fwd_bwd"."""
    grad_bytes = logits.element_size() if mode == "fwd_bwd" else 0
    return logits.numel() * (logits.element_size() + targets.element_size() + grad_bytes)


# Time spent timing one cell: pytest-benchmark's default (at least 1 s, more with its
# calibration) would make the default CPU run of the grids take many minutes on 2 cores.
CELL_SECONDS = 0.3
MIN_ROUNDS = 5
bench_budget = pytest.mark.benchmark(max_time=CELL_SECONDS, min_rounds=MIN_ROUNDS)

ROUND_SECONDS = 2e-3  # CUDA: calls per timed round, so that one sync ends ≥ ~2 ms of work
MAX_CALLS = 20


def calls_per_round(call, device: Device) -> int:
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


def timed_round(call, device: Device):
    """``(step, calls)``: after a warm-up call of ``call`` (compilation, allocator caches), the
    timed round — ``calls`` back-to-back calls (``calls_per_round``) and one sync."""
    call()
    calls = calls_per_round(call, device)

    def step():
        for _ in range(calls):
            call()
        device.sync()

    return step, calls


def device_time(call, device: Device) -> tuple[float | None, str | None]:
    """(device seconds per call from CUDA-graph replays, or None; a note when not measured)."""
    if device.type != "cuda":
        return None, None
    try:
        return graph_seconds_per_call(call), None
    except RuntimeError as err:  # a call that cannot be captured keeps its wall time
        return None, f"CUDA graph capture failed: {err}"[:300]


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and still alive (CPU).

    Each op output with a storage not seen before counts its bytes until the tensor is
    garbage-collected; autograd's saved tensors stay alive and count. Inputs created
    before the mode are not counted. Used on CPU, where there is no allocator statistic.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._ptrs: set[int] = set()

    def _free(self, ptr: int, nbytes: int) -> None:
        self._ptrs.discard(ptr)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                ptr, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and ptr not in self._ptrs:
                    self._ptrs.add(ptr)
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, ptr, nbytes)
        return out


def peak_memory(device: Device, fn) -> tuple[int, str]:
    """(peak bytes allocated by one call of fn beyond what existed before, how measured)."""
    if device.type == "cuda":
        device.sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        device.sync()
        return torch.cuda.max_memory_allocated() - base, "torch.cuda.max_memory_allocated"
    with PeakTensorMemory() as tracker:
        fn()
    return tracker.peak, "tensor storages alive (TorchDispatchMode)"


# SPEC §2: GB/s is quoted only for data well above L2 size; below, repeated calls hit L2 and
# the figure (and its % of the DRAM peak) says nothing about memory bandwidth.
ABOVE_L2_FACTOR = 4


def above_l2(device: Device, nbytes: int) -> bool:
    """Whether ``nbytes`` is well above the device's L2 (True where L2 is unknown)."""
    return device.l2_bytes is None or nbytes >= ABOVE_L2_FACTOR * device.l2_bytes


def graph_seconds_per_call(fn, calls: int = 10, replays: int = 10, repeats: int = 5) -> float:
    """Device time of one call of ``fn`` (CUDA): ``calls`` calls captured in one CUDA graph,
    replayed back to back (median of ``repeats`` timings of ``replays`` replays).

    A graph replay launches the captured kernels without Python, autograd or launch overhead,
    so this is the GPU's time for the call's work, what it costs inside a CUDA-graphed training
    step, where the wall time of a Python loop (the benchmark's own timing) may be the host's.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on the capture stream: per-stream workspaces
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(replays):
            graph.replay()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / (replays * calls))
    return statistics.median(times)


def record(
    benchmark, device: Device, *, nbytes: int, fn, calls: int = 1,
    device_seconds: float | None = None, **info,
) -> None:  # fmt: skip
    """Put bytes, GB/s, % of peak bandwidth and peak memory into ``benchmark.extra_info``.

    ``calls``: calls of ``fn`` per timed round (the time per call is the round's / calls).
    ``device_seconds``: the device time per call (CUDA graph replay, see
    ``graph_seconds_per_call``), recorded with its own GB/s and % of peak.
    GB/s and % of peak are None for data that is not well above the L2 size (see ``above_l2``).
    """
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.median / calls if stats is not None else None
    gbs = nbytes / seconds / 1e9 if seconds and above_l2(device, nbytes) else None
    dev_gbs = nbytes / device_seconds / 1e9 if device_seconds and above_l2(device, nbytes) else None
    peak = device.peak_bytes_s
    peak_mem, how = peak_memory(device, fn)
    benchmark.extra_info.update(
        device=device.name,
        bytes=nbytes,
        calls_per_round=calls,
        seconds_per_call=seconds,
        gb_per_s=gbs,
        peak_bandwidth_gb_per_s=device.peak_bytes_s / 1e9 if device.peak_bytes_s else None,
        pct_of_peak=100 * gbs * 1e9 / peak if gbs and peak else None,
        device_seconds_per_call=device_seconds,
        device_gb_per_s=dev_gbs,
        device_pct_of_peak=100 * dev_gbs * 1e9 / peak if dev_gbs and peak else None,
        peak_memory_bytes=peak_mem,
        peak_memory_how=how,
        **info,
    )


@pytest.fixture(scope="session")
def bench_record():
    """``record(benchmark, device, nbytes=..., fn=..., **info)``."""
    return record
