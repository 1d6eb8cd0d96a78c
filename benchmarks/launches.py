"""Count the CUDA kernels each MSML variant launches for one forward / forward + backward.

    python -m benchmarks.launches [--B 65536] [--C 14] [--dtype bfloat16]

Each step is run once to warm up (compilation, caches), then once under ``torch.profiler``;
every device-side event (kernels, memsets, copies) is listed with its name. The
"fwd_bwd" step is ``loss = fn(x, y); loss.backward()``: autograd itself adds one fill kernel
for the implicit ``grad_output`` of 1 (``torch.ones_like(loss)``), listed like the others.
"triton value+grad" calls ``losses._triton.msml.msml_forward(..., need_grad=True)``: the
loss and the gradient (for a grad_output of 1) without autograd.

CUDA only: on a machine without a CUDA device it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

import torch

STEPS = ["fwd", "fwd_bwd"]


def make_step(fn, logits: torch.Tensor, targets: torch.Tensor, mode: str):
    """One call of loss ``fn``: ``loss = fn(x, y)``, and for "fwd_bwd" ``loss.backward()``
    with the gradient dropped after it (so no accumulation kernel runs on the next call)."""
    x = logits.detach().requires_grad_(mode == "fwd_bwd")

    def step():
        loss = fn(x, targets)
        if mode == "fwd_bwd":
            loss.backward()
            x.grad = None

    return step


def device_events(step) -> list[str]:
    """Names of the device-side events of one call of ``step`` (after a warm-up call)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]


def variants() -> dict:
    from losses.msml import msml_factorised, msml_factorised_autograd, msml_naive

    out = {
        "naive": msml_naive,
        "factorised": msml_factorised,
        "factorised (autograd)": msml_factorised_autograd,
        "compiled": torch.compile(msml_factorised_autograd),
    }
    try:
        from losses._triton.msml import msml_triton
    except ImportError:
        return out
    out["triton"] = msml_triton
    return out


def count(B: int, C: int, dtype: torch.dtype, naive_max_pairs: int = 2**31) -> list[tuple]:
    """(variant, step, number of device events, their names) rows."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, generator=gen).to("cuda", dtype)
    targets = (torch.rand(B, C, generator=gen) < 0.1).cuda()
    rows = []
    fns = variants()
    for name, fn in fns.items():
        if name == "naive" and B * C * C > naive_max_pairs:
            continue
        for mode in STEPS:
            names = device_events(make_step(fn, logits, targets, mode))
            rows.append((name, mode, len(names), names))
    if "triton" in fns:
        from losses._triton.msml import msml_forward

        names = device_events(lambda: msml_forward(logits, targets, "mean", need_grad=True))
        rows.append(("triton value+grad", "fwd_bwd", len(names), names))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=65536)
    parser.add_argument("--C", type=int, default=14)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "benchmarks.launches counts CUDA kernel launches: no CUDA device here", file=sys.stderr
        )
        return 2
    rows = count(args.B, args.C, getattr(torch, args.dtype))
    print(f"B={args.B} C={args.C} {args.dtype} on {torch.cuda.get_device_name()}")
    for name, mode, n, names in rows:
        shown = ", ".join(k[:60] for k in names) if n <= 6 else "(PyTorch kernels)"
        print(f"{name:22s} {mode:8s} {n:3d}  {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
