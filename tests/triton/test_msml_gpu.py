"""The MSML Triton kernel on a CUDA device at realistic sizes (skipped without one)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.triton]


def value_and_grad(fn, logits, targets, reduction, grad_output=None, upcast=False):
    x = (logits.float() if upcast else logits).detach().requires_grad_()
    value = fn(x, targets, reduction)
    value.backward(torch.ones_like(value) if grad_output is None else grad_output)
    return value.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("B", "C"), [(4096, 14), (4096, 80), (2048, 1000), (256, 16384),
                                      (256, 16385), (64, 100_000)])  # fmt: skip
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
