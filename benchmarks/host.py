"""Host (CPU) time per call of each MSML variant, where the device work is negligible.

    python -m benchmarks.host [--B 64] [--C 14] [--calls 2000] [--profile]

At a tiny batch the device finishes each kernel long before the host issues the next one, so
the wall time per call of N back-to-back calls (one sync at the end) is the host's cost of a
call: Python, argument checks, allocations, kernel launches, autograd. A fused kernel only
pays off while this stays below its device time; the benchmarks time both together.
``--profile`` adds a cProfile of the Triton forward + backward (top functions by own time).

CUDA only: without a CUDA device it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time

import torch

from benchmarks.launches import STEPS, make_step, variants


def per_call_us(step, calls: int) -> float:
    """Wall time per call of ``calls`` back-to-back calls (after a warm-up), in µs."""
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=64)
    parser.add_argument("--C", type=int, default=14)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.host times CUDA launches: no CUDA device here", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(args.B, args.C, generator=gen).to("cuda", torch.bfloat16)
    targets = (torch.rand(args.B, args.C, generator=gen) < 0.1).cuda()
    print(f"host time per call, B={args.B} C={args.C} bf16, {torch.cuda.get_device_name()}")
    fns = variants()
    for name, fn in fns.items():
        for mode in STEPS:
            us = per_call_us(make_step(fn, logits, targets, mode), args.calls)
            print(f"{name:22s} {mode:8s} {us:8.1f} us")
    if "triton" in fns:
        from losses._triton.msml import msml_forward

        us = per_call_us(lambda: msml_forward(logits, targets, "mean", need_grad=True), args.calls)
        print(f"{'triton value+grad':22s} {'fwd_bwd':8s} {us:8.1f} us  (msml_forward, no autograd)")
        if args.profile:
            step = make_step(fns["triton"], logits, targets, "fwd_bwd")
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [step() for _ in range(args.calls)])
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
