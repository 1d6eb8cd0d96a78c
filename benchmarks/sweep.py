"""Sweep the MSML kernel's launch configuration on a CUDA device (for tuning the heuristic).

    python -m benchmarks.sweep [--B 65536] [--C 14 1000 10000] [--dtype bfloat16] [--heuristic-only] [--top 2]

For each C, times ``msml_forward(..., need_grad=True)`` (value + gradient, "mean": one launch;
also "none", the per-row loss without the in-launch sum) with ``triton.testing.do_bench``
(median): first the heuristic's own configuration and other (rows per program, num_warps)
shapes, then the two fastest with other grid sizes (resident warps per SM) and load
policies. Prints ms and GB/s
(bytes = B·C·(logit + target + gradient bytes), as the benchmarks count them). Also prints a
device-to-device copy's rate (bytes read + written) as the practical ceiling.

CUDA only: without a CUDA device it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
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
    """``cfg`` with other grid sizes (8 to 64 resident warps per SM), with and without the
    evict-first policy on the loads."""
    out = [
        kmod.LaunchConfig(cfg.rows, cfg.block_c, cfg.single, cfg.num_warps, wps, evict)
        for wps in (8, 16, 32, 64)
        for evict in (False, True)
        if wps >= cfg.num_warps
    ]
    return [c for c in out if c != cfg]


def sweep(
    B: int, C: int, dtype: torch.dtype, heuristic_only: bool = False, top: int = 2
) -> list[tuple]:
    """Time the candidates of C (stage 1), then the ``top`` fastest with other grid sizes."""
    import triton.testing

    from losses._triton import msml as kmod

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, generator=gen).to("cuda", dtype)
    targets = (torch.rand(B, C, generator=gen) < 0.1).cuda()
    grad_bytes = torch.empty((), dtype=kmod._grad_dtype(dtype)).element_size()
    nbytes = B * C * (logits.element_size() + 1 + grad_bytes)
    ref, _ = kmod.msml_forward(logits, targets, "mean", need_grad=True)

    def measure(cfg, tag):
        with mock.patch.object(kmod, "_launch_config", lambda C, block_c=None, cfg=cfg: cfg):
            value, _ = kmod.msml_forward(logits, targets, "mean", need_grad=True)
            ok = torch.allclose(value, ref, rtol=1e-4)
            ms = {
                reduction: triton.testing.do_bench(
                    lambda r=reduction: kmod.msml_forward(logits, targets, r, need_grad=True),
                    return_mode="median",
                )
                for reduction in ("mean", "none")
            }
        return (C, tag, cfg, ms["mean"], nbytes / ms["mean"] / 1e6, ok, ms["none"])

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
        "--top", type=int, default=2, help="shapes tried with other grid sizes and load policies"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.sweep times the Triton kernel: no CUDA device here", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}: d2d copy {copy_rate():.0f} GB/s (read + write)")
    for C in args.C:
        rows = sweep(args.B, C, getattr(torch, args.dtype), args.heuristic_only, args.top)
        best = min(rows, key=lambda r: r[3])
        for C_, tag, cfg, ms, gbs, ok, ms_none in rows:
            mark = " <- best" if (C_, cfg) == (best[0], best[2]) else ""
            print(
                f"C={C_:<6d} rows={cfg.rows:<4d} block_c={cfg.block_c:<6d} warps={cfg.num_warps:<3d}"
                f" warps/SM={cfg.warps_per_sm:<3d}{' evict_first' if cfg.evict_first else '':12s}"
                f" {ms * 1e3:9.1f} us {gbs:7.0f} GB/s {'ok' if ok else 'WRONG'}"
                f" (per-row, no in-launch sum: {ms_none * 1e3:.1f} us) {tag}{mark}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
