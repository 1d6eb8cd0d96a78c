"""Sweep the MSML kernel's launch configuration on a CUDA device (for tuning the heuristic).

    python -m benchmarks.sweep [--B 65536] [--C 14 1000 10000] [--dtype bfloat16] [--heuristic-only] [--top 2]

For each C, times ``msml_forward(..., need_grad=True)`` (value + gradient, "mean": one launch;
also "none", the per-row loss without the in-launch sum) with ``triton.testing.do_bench``
(median): first the heuristic's own configuration and other (rows per program, num_warps)
shapes, then the two fastest with other grid sizes (resident warps per SM) and with
software-pipelined loads (``LaunchConfig.num_stages``). A configuration is marked WRONG when
its value or gradient differs from the heuristic's. Prints ms and GB/s
(bytes = B·C·(logit + target + gradient bytes), as the benchmarks count them). Also prints a
device-to-device copy's rate (bytes read + written) as the practical ceiling.

CUDA only: without a CUDA device it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from unittest import mock

import torch


def copy_rate(nbytes: int = 2**32) -> float:
    """GB/s of a device-to-device copy of ``nbytes``, counting bytes read and written."""
    import triton.testing

    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * nbytes / ms / 1e6


def candidates(kmod, C: int) -> list:
    """Launch shapes to try for C: the heuristic's first, then rows × warps with 8-32 values
    per thread (whole rows), and for large C the block loop (and whole rows in many warps)."""
    import triton

    base = kmod._launch_config(C)
    out = [base]
    if base.single:
        for rows in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            if rows * base.block_c > 16 * 1024 or rows * base.block_c < 256:
                continue
            for warps in (1, 2, 4, 8, 16, 32):
                per_thread = rows * base.block_c // (32 * warps)
                if 8 <= per_thread <= 32:
                    out.append(kmod.LaunchConfig(rows, base.block_c, True, warps, base.warps_per_sm))
    if C > 4096:  # large C: whole rows in registers with many warps ...
        block_c = triton.next_power_of_2(C)
        for warps in (8, 16, 32):
            if block_c // (32 * warps) <= 64:
                out.append(kmod.LaunchConfig(1, block_c, True, warps))
    if not base.single or C > 4096:  # ... and the multi-pass block loop
        for block_c in (1024, 2048, 4096, 8192):
            for warps in (4, 8, 16):
                out.append(kmod.LaunchConfig(1, block_c, False, warps))
    return list(dict.fromkeys(out))  # without repeats, the heuristic's own first


def grid_variants(kmod, cfg) -> list:
    """``cfg`` with other grid sizes (8 to 64 resident warps per SM), and with its loads
    software-pipelined (2 or 3 stages) on 8 to 32 warps per SM: pipelining takes registers
    (e.g. 128 → 150-160 per thread for one-warp programs at C=1000, so at most 12 such warps fit
    an SM), so the best grid moves with it. Warps per SM not a
    multiple of the program's warps round down (``_num_programs``). Last, 2 and 3 stages on 16
    warps per SM with registers capped at 128 per thread."""
    out = [replace(cfg, warps_per_sm=wps, num_stages=1) for wps in (8, 12, 16, 24, 32, 64)]
    out += [
        replace(cfg, warps_per_sm=wps, num_stages=stages)
        for stages in (2, 3)
        for wps in (8, 12, 16, 24, 32)
    ]
    # pipelined with registers capped at 128 (may spill), so that 16 warps per SM stay resident
    out += [replace(cfg, warps_per_sm=16, num_stages=stages, maxnreg=128) for stages in (2, 3)]
    return [c for c in out if c != cfg and c.warps_per_sm >= c.num_warps]


def sweep(
    B: int, C: int, dtype: torch.dtype, heuristic_only: bool = False, top: int = 2, show=None,
    device: str = "cuda",
) -> list[tuple]:
    """Time the candidates of C (stage 1), then the ``top`` fastest with other grid sizes.

    ``show(row)`` is called with each row as soon as it is measured (a sweep cut short by a
    time limit keeps what it printed). ``device`` other than "cuda" only for testing the tool
    (CPU tensors under the Triton interpreter)."""
    import triton.testing

    from losses._triton import msml as kmod

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, generator=gen).to(device, dtype)
    targets = (torch.rand(B, C, generator=gen) < 0.1).to(device)
    grad_bytes = torch.empty((), dtype=kmod._grad_dtype(dtype)).element_size()
    nbytes = B * C * (logits.element_size() + 1 + grad_bytes)
    ref, ref_grad = kmod.msml_forward(logits, targets, "mean", need_grad=True)

    def measure(cfg, tag):
        with mock.patch.object(kmod, "_launch_config", lambda C, block_c=None, cfg=cfg: cfg):
            value, grad = kmod.msml_forward(logits, targets, "mean", need_grad=True)
            # the same value and gradient as the heuristic's configuration
            ok = torch.allclose(value, ref, rtol=1e-4) and torch.allclose(
                grad.float(), ref_grad.float(), rtol=1.6e-2, atol=1e-7
            )
            ms = {
                reduction: triton.testing.do_bench(
                    lambda r=reduction: kmod.msml_forward(logits, targets, r, need_grad=True),
                    return_mode="median",
                )
                for reduction in ("mean", "none")
            }
        row = (C, tag, cfg, ms["mean"], nbytes / ms["mean"] / 1e6, ok, ms["none"])
        if show is not None:
            show(row)
        return row

    shapes = candidates(kmod, C)[: 1 if heuristic_only else None]
    rows = [measure(cfg, "heuristic" if i == 0 else "") for i, cfg in enumerate(shapes)]
    for r in sorted(rows, key=lambda r: r[3])[:top]:
        rows += [measure(cfg, "grid") for cfg in grid_variants(kmod, r[2])]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=65536)
    parser.add_argument("--C", type=int, nargs="+", default=[14, 1000, 10000])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--heuristic-only", action="store_true", help="the heuristic's shape only (then --top)"
    )
    parser.add_argument(
        "--top", type=int, default=2, help="shapes tried with other grid sizes and pipelined loads"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.sweep times the Triton kernel: no CUDA device here", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}: d2d copy {copy_rate():.0f} GB/s (read + write)")
    for C in args.C:
        rows = sweep(args.B, C, getattr(torch, args.dtype), args.heuristic_only, args.top, _show)
        _show(min(rows, key=lambda r: r[3]), "best: ")
    return 0


def _show(row: tuple, prefix: str = "") -> None:
    C, tag, cfg, ms, gbs, ok, ms_none = row
    print(
        f"{prefix}C={C:<6d} rows={cfg.rows:<4d} block_c={cfg.block_c:<6d} warps={cfg.num_warps:<3d}"
        f" warps/SM={cfg.warps_per_sm:<3d} stages={cfg.num_stages}"
        f"{f' maxnreg={cfg.maxnreg}' if cfg.maxnreg else '':12s}"
        f"{' evict_first' if cfg.evict_first else '':12s}"
        f" {ms * 1e3:9.1f} us {gbs:7.0f} GB/s {'ok' if ok else 'WRONG'}"
        f" (per-row, no in-launch sum: {ms_none * 1e3:.1f} us) {tag}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
