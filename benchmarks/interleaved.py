"""Time a few loss specs against each other, interleaved, for ratios that survive a shared machine.

    python -m benchmarks.interleaved bce msml bce+0.1*msml [--B 4096] [--C 14] [--mode fwd_bwd]

pytest-benchmark times one cell after another, so a burst of load from another process lands
on some cells and not others and moves their ratios. Here every repeat times each spec once, in
turn (``--calls`` calls each, after a warm-up), and a ratio is the median over the repeats of
the per-repeat ratio: load that lasts longer than one repeat cancels out. It prints, per spec,
the median time per call, its ratio to the first spec, and for a composite its ratio to the
sum of its terms (each term must be listed too). Inputs as the benchmarks (``bench_inputs``:
fp32 on CPU, bf16 on CUDA, bool targets with 10% positives), losses built as a run builds
them (``benchmarks.test_losses.build``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def measure(specs: list[str], B: int, C: int, mode: str, repeats: int, calls: int) -> dict:
    """{spec: [seconds per call, one per repeat]}, the specs timed in turn within each repeat."""
    from benchmarks.conftest import Device, bench_inputs
    from benchmarks.launches import make_step
    from benchmarks.test_losses import build

    cuda = torch.cuda.is_available()
    device = Device("cuda" if cuda else "cpu", "", None, 0)
    logits, targets = bench_inputs(B, C, device)
    steps = {spec: make_step(build(spec, targets), logits, targets, mode) for spec in specs}
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {spec: [] for spec in specs}
    for _ in range(repeats):
        for spec, step in steps.items():
            device.sync()
            start = time.perf_counter()
            for _ in range(calls):
                step()
            device.sync()
            times[spec].append((time.perf_counter() - start) / calls)
    return times


def ratios(times: dict[str, list[float]]) -> list[tuple]:
    """(spec, median s/call, median × first spec, median × Σ its terms or None) per spec."""
    from benchmarks.specs import term_names

    first = next(iter(times))
    rows = []
    for spec, ts in times.items():
        terms = term_names(spec)
        vs_terms = None
        if len(terms) > 1 and all(t in times for t in terms):
            sums = [sum(times[t][i] for t in terms) for i in range(len(ts))]
            vs_terms = statistics.median(t / s for t, s in zip(ts, sums, strict=True))
        vs_first = statistics.median(t / f for t, f in zip(ts, times[first], strict=True))
        rows.append((spec, statistics.median(ts), vs_first, vs_terms))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="loss specs; ratios are to the first")
    parser.add_argument("--B", type=int, default=4096)
    parser.add_argument("--C", type=int, default=14)
    parser.add_argument("--mode", choices=["fwd", "fwd_bwd"], default="fwd_bwd")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calls", type=int, default=20, help="calls per spec per repeat")
    args = parser.parse_args(argv)
    times = measure(args.specs, args.B, args.C, args.mode, args.repeats, args.calls)
    print(
        f"B={args.B} C={args.C} {args.mode}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; medians over {args.repeats} interleaved repeats "
        f"of {args.calls} calls"
    )
    first = args.specs[0]
    for spec, seconds, vs_first, vs_terms in ratios(times):
        terms = f"  × terms {vs_terms:.3f}" if vs_terms is not None else ""
        print(f"{spec:24s} {seconds * 1e3:8.3f} ms  × {first} {vs_first:.3f}{terms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
