"""MSML backends: forced forms agree, auto falls back to PyTorch off-GPU, triton fails clearly."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import msml as msml_mod
from losses.msml import msml_factorised, msml_loss, msml_naive


def _batch(b=6, c=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=gen) * 3, torch.rand(b, c, generator=gen) < 0.3


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_backends_agree(reduction):
    logits, targets = _batch()
    expected = msml_naive(logits.double(), targets, reduction=reduction)
    for backend in ("auto", "factorised", "naive"):
        got = msml_loss(logits, targets, reduction=reduction, backend=backend)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_public_forms_take_reduction_positionally():
    logits, targets = _batch()
    assert msml_factorised(logits, targets, "none").shape == (6,)
    assert msml_naive(logits, targets, "sum").shape == ()


def test_paper_values():
    """Row 1: positives {0}, negatives {1, 2}: log(1 + e^{1−2} + e^{0−2}); row 2: no negatives → 0."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 3.0]])
    targets = torch.tensor([[1, 0, 0], [1, 1, 1]])
    expected = torch.tensor(
        [torch.log1p(torch.exp(torch.tensor(-1.0)) + torch.exp(torch.tensor(-2.0))), 0.0]
    )
    torch.testing.assert_close(msml_loss(logits, targets, reduction="none"), expected)


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"`backend`.*'factorised'.*'cuda'"):
        msml_loss(*_batch(), backend="cuda")


def test_auto_uses_pytorch_for_cpu_tensors(monkeypatch):
    monkeypatch.setattr(
        msml_mod, "_load_triton", lambda: pytest.fail("auto must not try triton on CPU")
    )
    logits, targets = _batch()
    torch.testing.assert_close(msml_loss(logits, targets), msml_factorised(logits, targets))


def test_auto_on_cuda_falls_back_without_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(msml_mod, "_load_triton", lambda: calls.append(1))
    logits, targets = _batch()
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # pretend
    value = msml_loss(logits, targets)
    monkeypatch.undo()
    assert calls == [1]
    torch.testing.assert_close(value, msml_factorised(logits, targets))


def test_auto_on_cuda_keeps_float64_off_the_kernel(monkeypatch):
    """The kernel takes fp32/fp16/bf16 only; auto must not send it fp64 (ValueError there)."""
    kernel_calls = []
    monkeypatch.setattr(msml_mod, "_load_triton", lambda: lambda *a, **k: kernel_calls.append(1))
    logits, targets = _batch()
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))  # pretend
    value = msml_loss(logits.double(), targets)
    monkeypatch.undo()
    assert kernel_calls == []
    torch.testing.assert_close(value, msml_factorised(logits.double(), targets))


def test_forced_triton_without_kernel_raises_clearly(monkeypatch):
    monkeypatch.setattr(msml_mod, "_load_triton", lambda: None)
    with pytest.raises(RuntimeError, match=r"backend='triton'.*losses\._triton\.msml"):
        msml_loss(*_batch(), backend="triton")


def test_forced_triton_dispatches_to_the_kernel(monkeypatch):
    seen = {}

    def fake_kernel(logits, targets, reduction="mean"):
        seen["reduction"] = reduction
        return msml_factorised(logits, targets, reduction)

    monkeypatch.setattr(msml_mod, "_load_triton", lambda: fake_kernel)
    logits, targets = _batch()
    msml_loss(logits, targets, backend="triton", reduction="sum")
    assert seen == {"reduction": "sum"}


def test_load_triton_matches_what_is_importable():
    """Where triton imports, the kernel must load: an ImportError inside losses._triton.msml
    would otherwise send every CUDA run of backend="auto" silently to the PyTorch form."""
    from losses._triton import is_available

    kernel = msml_mod._load_triton()
    if importlib.util.find_spec("triton") is None or not is_available():
        assert kernel is None
    else:
        assert callable(kernel)


@pytest.mark.parametrize("backend", ["naive", "factorised"])
def test_forms_finite_at_extremes_with_edge_rows(backend):
    logits = torch.tensor(
        [[1e4, -1e4, 1e4], [-1e4, -1e4, 1e4], [-1e4, 1e4, -1e4]], requires_grad=True
    )
    targets = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0]])
    value = msml_loss(logits, targets, backend=backend)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(value, torch.tensor(2e4 / 3))


@pytest.mark.triton
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_backend_matches_factorised_under_interpreter():
    """msml_loss(backend="triton") through the real kernel (TRITON_INTERPRET=1, own process)."""
    import os
    import subprocess
    import sys

    code = (
        "import torch; from losses.msml import msml_loss, msml_factorised\n"
        "g = torch.Generator().manual_seed(0)\n"
        "z = torch.randn(5, 14, generator=g, requires_grad=True); y = torch.rand(5, 14, generator=g) < 0.3\n"
        "y[0] = False; y[1] = True\n"
        "a = msml_loss(z, y, backend='triton', reduction='none'); b = msml_factorised(z, y, 'none')\n"
        "torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)\n"
        "ga, = torch.autograd.grad(a.sum(), z); gb, = torch.autograd.grad(b.sum(), z)\n"
        "torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6); print('ok')\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# --- msml_factorised (gradient written by the forward) vs its plain-autograd twin -----------


def _value_and_grad(fn, logits, targets, reduction, grad_output):
    x = logits.detach().clone().requires_grad_()
    value = fn(x, targets, reduction)
    value.backward(grad_output.to(value.dtype))
    return value.detach(), x.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_gradient_matches_autograd_form(dtype, reduction):
    logits, targets = _batch(9, 7, seed=3)
    logits = logits.to(dtype)
    targets[0], targets[1] = False, True  # no positives; no negatives
    gen = torch.Generator().manual_seed(1)
    grad_output = torch.rand(9, generator=gen) if reduction == "none" else torch.tensor(3.0)
    got = _value_and_grad(msml_factorised, logits, targets, reduction, grad_output)
    want = _value_and_grad(
        msml_mod.msml_factorised_autograd, logits, targets, reduction, grad_output
    )
    assert got[1].dtype == dtype
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.parametrize(
    ("values", "shift"),
    [([0.5, -40.0, 40.0], False), ([0.5, 40.5], True), ([-41.0], True),
     ([float("nan")], True), ([float("inf")], True), ([-float("inf")], True)],
)  # fmt: skip
def test_row_max_shift_is_skipped_only_within_the_bound(values, shift):
    assert msml_mod._needs_shift(torch.tensor(values)) is shift
    assert msml_mod._needs_shift(torch.empty(0, 3)) is True


@settings(max_examples=60, deadline=None)
@given(
    scale=st.floats(0.01, 200.0),
    p_pos=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_fused_form_matches_autograd_form_either_side_of_the_shift_bound(scale, p_pos, seed, dtype):
    """Logits within ±40 skip the row-max shift, larger ones take it: both agree with the
    autograd form (which always shifts), value and gradient, with rows of no positives and no
    negatives among them."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(7, 11, generator=gen, dtype=torch.float64) * scale).to(dtype)
    targets = torch.rand(7, 11, generator=gen) < p_pos
    targets[0], targets[1] = False, True
    go = torch.tensor(1.0)
    got = _value_and_grad(msml_factorised, logits, targets, "none", go.expand(7))
    want = _value_and_grad(msml_mod.msml_factorised_autograd, logits, targets, "none", go.expand(7))
    # relative to the loss scale: the two forms round differently at large logits
    tol = dict(rtol=1e-5, atol=1e-6 * max(1.0, scale))
    torch.testing.assert_close(got[0], want[0], **tol)
    torch.testing.assert_close(got[1], want[1], **tol)


def test_fused_gradient_keeps_fp16_gradient_under_a_loss_scale():
    """The gradient stays fp32 until grad_output (a GradScaler's 2^16) has been applied."""
    logits, targets = _batch(4096, 14, seed=4)
    logits = logits.half()
    scale = torch.tensor(2.0**16)
    got = _value_and_grad(msml_factorised, logits, targets, "mean", scale)[1]
    want = _value_and_grad(msml_mod.msml_factorised_autograd, logits, targets, "mean", scale)[1]
    assert (got != 0).sum() == (want != 0).sum() > 0
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fused_form_has_second_derivatives(reduction):
    logits, targets = _batch(5, 6, seed=5)
    targets[0], targets[1] = False, True
    x = logits.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: msml_factorised(z, targets, reduction), x)
    assert torch.autograd.gradgradcheck(lambda z: msml_factorised(z, targets, reduction), x)


def test_fused_form_writes_no_gradient_without_grad(monkeypatch):
    seen = []
    rows = msml_mod._msml_rows
    monkeypatch.setattr(msml_mod, "_msml_rows", lambda *a, **k: seen.append(k) or rows(*a, **k))
    logits, targets = _batch()
    msml_factorised(logits, targets)  # logits need no gradient
    with torch.no_grad():
        msml_factorised(logits.requires_grad_(), targets)
    assert seen == [{"need_grad": False}] * 2


def test_fused_form_bad_reduction():
    with pytest.raises(ValueError, match="`reduction`.*'batchmean'"):
        msml_factorised(*_batch(), "batchmean")
