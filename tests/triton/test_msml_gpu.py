"""The MSML Triton kernel on a CUDA device at realistic sizes (skipped without one)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.triton]


def value_and_grad(fn, logits, targets, reduction, grad_output=None, upcast=False):
    x = (logits.float() if upcast else logits).detach().requires_grad_()
    value = fn(x, targets, reduction)
    value.backward(torch.ones_like(value) if grad_output is None else grad_output)
    return value.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("B", "C"), [(4096, 14), (4096, 80), (2048, 1000), (256, 8192),
                                      (256, 8193), (64, 100_000)])  # fmt: skip
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_matches_factorised(gpu_kmod, references, tolerances, batch, B, C, dtype, reduction):
    logits, targets = batch(B, C, dtype=dtype, device="cuda", seed=C, p_pos=0.1)
    grad_output = torch.rand(B, device="cuda") if reduction == "none" else None
    value, grad = value_and_grad(gpu_kmod.msml_triton, logits, targets, reduction, grad_output)
    ref_value, ref_grad = value_and_grad(
        references["factorised"], logits, targets, reduction, grad_output, upcast=True
    )
    rtol, atol = tolerances[dtype]
    assert grad.dtype == dtype
    torch.testing.assert_close(value, ref_value, rtol=rtol, atol=atol)
    torch.testing.assert_close(grad.float(), ref_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("num_stages", "maxnreg"), [(2, None), (3, None), (2, 128)])
@pytest.mark.parametrize(("B", "C"), [(4096, 14), (2048, 1000), (64, 10_000)])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_pipelined_configurations_match_factorised(
    gpu_kmod, references, tolerances, batch, monkeypatch, B, C, num_stages, maxnreg, reduction
):
    """The software-pipelined loads (LaunchConfig.num_stages, a sweep knob), also with the
    registers capped (spilling), give the same loss and gradient: bf16 logits, and rows without
    positives or negatives among them."""
    heuristic = gpu_kmod._launch_config
    monkeypatch.setattr(
        gpu_kmod, "_launch_config",
        lambda C, block_c=None: replace(
            heuristic(C, block_c), num_stages=num_stages, maxnreg=maxnreg
        ),
    )  # fmt: skip
    logits, targets = batch(B, C, dtype=torch.bfloat16, device="cuda", seed=C + num_stages)
    grad_output = torch.rand(B, device="cuda") if reduction == "none" else None
    value, grad = value_and_grad(gpu_kmod.msml_triton, logits, targets, reduction, grad_output)
    ref_value, ref_grad = value_and_grad(
        references["factorised"], logits, targets, reduction, grad_output, upcast=True
    )
    rtol, atol = tolerances[torch.bfloat16]
    torch.testing.assert_close(value, ref_value, rtol=rtol, atol=atol)
    torch.testing.assert_close(grad.float(), ref_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("C", [14, 1000, 10_000])
def test_nan_logits_give_nan_rows(gpu_kmod, references, batch, C, dtype):
    """On the device, where min/max drop NaN unless told not to: a NaN logit (a negative in row
    2, a positive in row 3) gives a NaN loss for its row only, and a NaN gradient row."""
    logits, targets = batch(64, C, dtype=dtype, device="cuda", seed=C)
    targets[2:4] = False
    targets[2:4, 5] = True
    logits[2, 9] = float("nan")
    logits[3, 5] = float("nan")
    x = logits.detach().requires_grad_()
    value = gpu_kmod.msml_triton(x, targets, "none")
    value.sum().backward()
    nan_rows = torch.zeros(64, dtype=torch.bool, device="cuda")
    nan_rows[2:4] = True
    assert torch.equal(value.isnan(), nan_rows)
    assert torch.equal(references["factorised"](logits, targets, "none").isnan(), nan_rows)
    assert x.grad[2:4].isnan().any(dim=1).all() and not x.grad[nan_rows.logical_not()].isnan().any()


def test_non_contiguous_and_target_dtypes(gpu_kmod, references, batch):
    logits, targets = batch(1024, 80, device="cuda")
    expected = references["factorised"](logits, targets, "none")
    for y in (targets, targets.to(torch.uint8), targets.float()):
        got = gpu_kmod.msml_triton(logits.t().contiguous().t(), y, "none")
        torch.testing.assert_close(got, expected)


def test_no_gradient_written_under_no_grad(gpu_kmod, batch):
    logits, targets = batch(65536, 1000, dtype=torch.bfloat16, device="cuda")
    logits.requires_grad_()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.no_grad():
        gpu_kmod.msml_triton(logits, targets)
    assert torch.cuda.max_memory_allocated() - base < logits.numel()  # no (B, C) buffer


@pytest.mark.slow
def test_int64_offsets(gpu_kmod, references):
    B, C = 2**31 // 14 + 4096, 14  # B*C > 2**31 elements
    gen = torch.Generator(device="cuda").manual_seed(0)
    logits = torch.randn(B, C, device="cuda", generator=gen, dtype=torch.bfloat16)
    targets = torch.rand(B, C, device="cuda", generator=gen) < 0.2
    logits.requires_grad_()
    value = gpu_kmod.msml_triton(logits, targets, "none")
    value[-4096:].sum().backward()
    tail_logits = logits.detach()[-4096:].clone().requires_grad_()
    ref = references["factorised"](tail_logits, targets[-4096:], "none")
    ref.sum().backward()
    torch.testing.assert_close(value[-4096:].detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits.grad[-4096:].float(), tail_logits.grad.float(),
                               rtol=1.6e-2, atol=1e-4)  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_in_launch_reduction_is_deterministic(gpu_kmod, references, batch, reduction):
    """B = 2^20, C = 14: 8192 row tiles over a grid of a few programs per SM; the last program
    sums the partials in program order, so repeated launches agree bit for bit (unlike float
    atomics)."""
    logits, targets = batch(2**20, 14, dtype=torch.bfloat16, device="cuda", seed=37, p_pos=0.1)
    values = [gpu_kmod.msml_triton(logits, targets, reduction) for _ in range(5)]
    assert all(torch.equal(v, values[0]) for v in values)
    expected = references["factorised"](logits.float(), targets, reduction)
    torch.testing.assert_close(values[0], expected, rtol=1e-5, atol=1e-6)
    assert gpu_kmod._ticket_counter(logits.device).item() == 0


def test_reduction_on_a_side_stream_and_in_a_cuda_graph(gpu_kmod, references, batch):
    logits, targets = batch(65536, 14, dtype=torch.bfloat16, device="cuda", seed=41)
    expected = references["factorised"](logits.float(), targets)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        on_side = gpu_kmod.msml_triton(logits, targets)
        gpu_kmod.msml_triton(logits, targets)  # warm-up before capture: compile, counter
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            captured = gpu_kmod.msml_triton(logits, targets)
    torch.cuda.current_stream().wait_stream(stream)
    graph.replay()
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(on_side, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(captured, expected, rtol=1e-5, atol=1e-6)
