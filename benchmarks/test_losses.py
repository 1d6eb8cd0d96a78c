"""Throughput of every registered loss and of the suites' composites (``benchmarks.specs``).

Grid: B ∈ {4096, 65536} × C ∈ {14, 80, 1000}, forward ("fwd") and forward + backward
("fwd_bwd") of the loss as a training run builds it (``losses.create_loss(spec, stats=...)``,
defaults, input validation on, moved to the device). A loss with state is timed in its initial
state (AUC-M's a = b = α = 0, compositional AUC at step 0: its BCE phase; the gradients of its
own parameters accumulate across calls, as they would between two optimizer steps). Logits bf16 on CUDA, fp32 on CPU; bool targets with 10%
positives. Each cell records the median time per call, GB/s (bytes = B·C·(logit + target +
gradient bytes), ``conftest.cell_bytes``) and peak memory; ``python -m benchmarks.table``
adds × BCE (the ``bce`` cell of the same run, shape and mode), ranks the losses per shape, and
gives each composite its time over the sum of its terms' times.

A cell is timed for about ``conftest.CELL_SECONDS`` (at least ``conftest.MIN_ROUNDS`` rounds;
the ``bench_budget`` marker), so that the default CPU run of the whole grid takes a few minutes
on 2 cores: pytest-benchmark's default spends at least a second per cell. On CUDA a round is
several back-to-back calls and one sync, and the device time per call (CUDA-graph replays) is
recorded beside the wall time, for the loss built with ``validate=False`` (the check of the
target values reads them back to the host, which a graph cannot capture).

Environment: ``MLBENCH_BENCH_FULL=1`` runs every cell on CPU too; by default a CPU run skips
B·C > 2**22 (``conftest.cpu_size_skip``).
"""

from __future__ import annotations

import pytest

import losses
from benchmarks.conftest import (
    bench_budget,
    bench_inputs,
    cell_bytes,
    cpu_size_skip,
    device_time,
    timed_round,
)
from benchmarks.launches import make_step
from benchmarks.specs import loss_specs, term_names

B_GRID = [4096, 65536]
C_GRID = [14, 80, 1000]
MODES = ["fwd", "fwd_bwd"]


def build(spec: str, targets, **kwargs):
    """The loss of ``spec`` as a run builds it, with the class counts of these targets, on
    their device (a loss with state, e.g. AUC-M's a, b, α, moves with the model in a run)."""
    stats = {"class_counts": targets.sum(dim=0).cpu(), "num_samples": targets.shape[0]}
    return losses.create_loss(spec, stats=stats, **kwargs).to(targets.device)


@bench_budget
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec", loss_specs())
@pytest.mark.parametrize("B", B_GRID)
@pytest.mark.parametrize("C", C_GRID)
def test_loss(benchmark, device, bench_record, C, B, spec, mode):
    reason = cpu_size_skip(B, C, device)
    if reason:
        pytest.skip(reason)
    logits, targets = bench_inputs(B, C, device)
    call = make_step(build(spec, targets), logits, targets, mode)
    step, calls = timed_round(call, device)
    benchmark.group = f"losses C={C} B={B} {mode}"
    benchmark(step)
    unchecked = make_step(build(spec, targets, validate=False), logits, targets, mode)
    device_seconds, note = device_time(unchecked, device)
    note = note or (device_seconds and "device time of the loss with validate=False")
    bench_record(
        benchmark, device, nbytes=cell_bytes(logits, targets, mode), fn=call, calls=calls,
        device_seconds=device_seconds, device_time_note=note,
        bench="losses", loss=spec, terms=term_names(spec), mode=mode, B=B, C=C,
        dtype=str(logits.dtype).split(".")[-1],
    )  # fmt: skip
