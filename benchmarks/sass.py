"""Static size of the MSML kernel, built for a GPU without one (a CPU-side proxy for its speed).

    python -m benchmarks.sass [--C 14 1000 10000] [--arch 90] [--stages 1 2 3] [--maxnreg 128]

Compiles the forward kernel (bf16 logits, bool targets, value + gradient, in-launch mean, the
launch heuristic's shape for each C) to cubin with ``triton.compile(..., target=GPUTarget)``
and prints, per C and number of pipeline stages: SASS instructions in the tile loop (and per
element a thread holds, for whole rows in registers), in the whole kernel, registers and spill stores per thread
(``ptxas -v``) and shared memory. The kernel is bound by instruction issue as much as by
memory, so the loop's size is the number to watch when no GPU is at hand; it says nothing of
memory latency (measure on a GPU: ``benchmarks.sweep``).

Uses the cuobjdump and ptxas shipped in the triton wheel. The compile tests build through
:func:`build_fwd` too, and keep the loop under a budget.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile


def compile_kernel(fn, signature, constexprs, arch, num_warps, maxnreg=None):
    """``triton.compile`` of ``fn`` for sm_<arch>, pointers marked 16-byte aligned as the JIT
    marks PyTorch's allocations."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    attrs = {
        (fn.arg_names.index(name),): [["tt.divisibility", 16]]
        for name, ty in signature.items()
        if ty.startswith("*")
    }
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(
        src, target=GPUTarget("cuda", arch, 32),
        options={"num_warps": num_warps, "maxnreg": maxnreg},
    )  # fmt: skip


def fwd_signature(logit_type: str, target_type: str = "u8", strided: bool = False) -> dict:
    """Argument types of the forward kernel as the JIT derives them at a launch."""
    sig = {
        "z_ptr": f"*{logit_type}", "y_ptr": f"*{target_type}", "loss_ptr": "*fp32",
        "grad_ptr": "*fp32" if logit_type == "fp16" else f"*{logit_type}",  # as _grad_dtype
        "B": "i32", "c_units": "i32",
        "zb_units": "i64", "yb_units": "i32", "gb_units": "i32", "grad_scale": "fp32",
        "partial_ptr": "*fp32", "counter_ptr": "*i32",
    }  # fmt: skip
    if strided:  # otherwise a column stride of 1 is specialised to a constant, as by the JIT
        sig.update(stride_zc="i32", stride_yc="i32")
    return sig


def build_fwd(
    kmod, C: int, logit_type: str = "bf16", *, arch: int = 90, target_type: str = "u8",
    grad: bool = True, strided: bool = False, reduce: bool = True, num_stages: int | None = None,
    maxnreg: int | None = None,
):  # fmt: skip
    """The forward kernel for C classes with the heuristic's launch shape, compiled."""
    cfg = kmod._launch_config(C)
    constexprs = {
        "ROWS": cfg.rows, "BLOCK_C": cfg.block_c, "SINGLE": cfg.single, "WRITE_GRAD": grad,
        "REDUCE": reduce, "RBLOCK": kmod._RBLOCK, "ROW_ALIGN": kmod._row_align(C), "FAST": True,
        "Y_BOOL": target_type == "u8", "EVICT": "",
        "NUM_STAGES": cfg.num_stages if num_stages is None else num_stages,
    }  # fmt: skip
    if not strided:
        constexprs.update(stride_zc=1, stride_yc=1)
    return compile_kernel(
        kmod._msml_fwd_kernel, fwd_signature(logit_type, target_type, strided), constexprs,
        arch, cfg.num_warps, maxnreg,
    )  # fmt: skip


def _tool(name: str) -> str:
    import triton.backends.nvidia as nvidia

    path = os.path.join(os.path.dirname(nvidia.__file__), "bin", name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"no {name} in the triton wheel ({path})")
    return path


def sass(kernel) -> list[str]:
    """The kernel's SASS instructions as "address text", NOPs left out."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        out = subprocess.run(
            [_tool("cuobjdump"), "-sass", f.name], capture_output=True, text=True, check=True
        ).stdout
    found = re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]+);", out)
    return [f"{int(addr, 16):x} {' '.join(text.split())}" for addr, text in found if "NOP" not in text]


def tile_loop(instructions: list[str]) -> list[str]:
    """The instructions of the longest backward branch's loop: the kernel's tile loop."""
    best = (0, 0)
    for line in instructions:
        addr, text = line.split(" ", 1)
        target = re.search(r"BRA (?:`\(\.L_x_\d+\) )?0x([0-9a-f]+)", text)
        if target and int(target.group(1), 16) < int(addr, 16):
            best = max(best, (int(target.group(1), 16), int(addr, 16)), key=lambda s: s[1] - s[0])
    return [
        line.split(" ", 1)[1]
        for line in instructions
        if best[0] <= int(line.split(" ", 1)[0], 16) <= best[1]
    ]


def ptxas_usage(kernel, arch: int) -> tuple[int, int]:
    """(registers, spill-store bytes) per thread, from ``ptxas -v`` on the kernel's PTX."""
    with tempfile.TemporaryDirectory() as tmp:
        ptx = os.path.join(tmp, "k.ptx")
        with open(ptx, "w") as f:
            f.write(kernel.asm["ptx"])
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        err = subprocess.run(
            [_tool("ptxas"), "-v", f"--gpu-name={gpu}", ptx, "-o", os.path.join(tmp, "k.o")],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
    return int(re.search(r"Used (\d+) registers", err).group(1)), int(
        re.search(r"(\d+) bytes spill stores", err).group(1)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, nargs="+", default=[14, 1000, 10000])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--stages", type=int, nargs="+", default=[1])
    parser.add_argument("--maxnreg", type=int, default=None)
    args = parser.parse_args(argv)
    import triton

    from losses._triton import msml as kmod

    if kmod.INTERPRETED:
        print("benchmarks.sass compiles kernels: unset TRITON_INTERPRET", file=sys.stderr)
        return 2
    print(f"triton {triton.__version__}, sm_{args.arch}, bf16 logits, bool targets, with gradient")
    for C in args.C:
        cfg = kmod._launch_config(C)
        per_thread = cfg.rows * cfg.block_c // (32 * cfg.num_warps)
        for stages in args.stages:
            k = build_fwd(kmod, C, arch=args.arch, num_stages=stages, maxnreg=args.maxnreg)
            code = sass(k)
            loop = tile_loop(code)
            regs, spill = ptxas_usage(k, args.arch)
            # the block loop's tile loop holds its three passes' loops: no per-element figure
            each = f"{len(loop) / per_thread:5.1f}/element" if cfg.single else "(3 pass loops)"
            print(
                f"C={C:<6d} rows={cfg.rows:<4d} block_c={cfg.block_c:<5d} warps={cfg.num_warps:<2d}"
                f" stages={stages} tile loop {len(loop):5d} SASS {each:14s}"
                f" kernel {len(code)}, {regs} registers, {spill} B spilled,"
                f" {k.metadata.shared} B shared"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
