"""Tests generated from the registry: every registered loss gets them without a line of its own."""

from __future__ import annotations

import inspect

import pytest
import torch

import losses

EXTREME_FP32 = 1e4


def _value_and_grad(loss_fn, logits, targets):
    logits = logits.detach().clone().requires_grad_(True)
    value = loss_fn(logits, targets)
    value.backward()
    return value, logits.grad


def _assert_finite(value, grad):
    assert torch.isfinite(value).all(), f"non-finite value {value}"
    assert grad is not None and torch.isfinite(grad.float()).all(), f"non-finite gradient {grad}"


@pytest.mark.parametrize("sign", ["both", "pos", "neg"])
def test_finite_at_extreme_fp32_logits(loss_name, h, sign):
    logits, targets = h.make_batch(6, 5, seed=1)
    pattern = torch.randint(0, 2, logits.shape, generator=torch.Generator().manual_seed(2))
    values = {
        "both": pattern * 2.0 - 1.0,
        "pos": torch.ones_like(logits),
        "neg": -torch.ones_like(logits),
    }
    logits = values[sign] * EXTREME_FP32
    value, grad = _value_and_grad(h.make_loss(loss_name, 5), logits, targets)
    _assert_finite(value, grad)


@pytest.mark.parametrize(
    ("dtype", "bound"),
    [
        (torch.float16, torch.finfo(torch.float16).max),
        (torch.bfloat16, EXTREME_FP32),
        (torch.bfloat16, torch.finfo(torch.bfloat16).max),  # SPEC §1: all finite bf16 inputs
    ],
)
def test_low_precision_computed_in_fp32(loss_name, h, dtype, bound):
    logits, targets = h.make_batch(6, 7, seed=3, dtype=dtype)
    loss = h.make_loss(loss_name, 7)
    value, grad = _value_and_grad(loss, logits, targets)
    _assert_finite(value, grad)
    assert value.dtype == torch.float32
    assert grad.dtype == dtype
    # same as feeding the (exactly representable) upcast values in fp32
    torch.testing.assert_close(value, loss(logits.float(), targets), rtol=1e-6, atol=1e-6)
    # extremes of the range: ± the largest value, or ±1e4 (bf16)
    gen = torch.Generator().manual_seed(4)
    extreme = ((torch.randint(0, 2, logits.shape, generator=gen) * 2 - 1) * bound).to(dtype)
    _assert_finite(*_value_and_grad(loss, extreme, targets))


@pytest.mark.parametrize("shape", [(1, 6), (5, 1), (1, 1)])
def test_finite_for_b1_c1_and_edge_rows(loss_name, h, shape):
    b, c = shape
    loss = h.make_loss(loss_name, c)
    for fill in (False, True):
        targets = torch.full(shape, fill)
        _assert_finite(
            *_value_and_grad(
                loss, torch.randn(shape, generator=torch.Generator().manual_seed(5)), targets
            )
        )
    logits, targets = h.make_batch(b, c, seed=6, edge_rows=False)
    _assert_finite(*_value_and_grad(loss, logits, targets))


def test_edge_rows_finite_and_gradient_flows(loss_name, h):
    logits, targets = h.make_batch(5, 6, seed=7)  # row 0: no positives, row 1: all positives
    value, grad = _value_and_grad(h.make_loss(loss_name, 6), logits, targets)
    _assert_finite(value, grad)
    assert grad.abs().sum() > 0, "no gradient reaches the logits"


def test_output_shape_per_reduction(loss_name, h, info):
    logits, targets = h.make_batch(5, 4, seed=8)
    for reduction in losses.REDUCTIONS:
        if reduction in info.reductions:
            out = h.make_loss(loss_name, 4, reduction=reduction)(logits, targets)
            assert out.shape == ((5,) if reduction == "none" else ())
        else:
            assert info.batch_coupled, "only batch-coupled losses may refuse a reduction"
            with pytest.raises(ValueError, match=reduction):
                h.make_loss(loss_name, 4, reduction=reduction)
            with pytest.raises(ValueError, match=reduction):
                h.call_fn(loss_name, logits, targets, reduction=reduction)


def test_mean_sum_none_consistent(loss_name, h, info):
    logits, targets = h.make_batch(6, 5, seed=9)
    mean = h.call_fn(loss_name, logits, targets, reduction="mean")
    total = h.call_fn(loss_name, logits, targets, reduction="sum")
    torch.testing.assert_close(total, mean * 6)
    if "none" in info.reductions:
        none = h.call_fn(loss_name, logits, targets, reduction="none")
        torch.testing.assert_close(mean, none.mean())


def test_not_batch_coupled_means_rowwise(loss_name, h, info):
    """A loss not declared batch-coupled gives each row the value it has on its own."""
    logits, targets = h.make_batch(5, 4, seed=10)
    whole = h.call_fn(loss_name, logits, targets, reduction="mean")
    parts = torch.stack(
        [h.call_fn(loss_name, logits[i : i + 1], targets[i : i + 1]) for i in range(5)]
    )
    coupled = not torch.allclose(whole, parts.mean(), rtol=1e-6, atol=1e-7)
    if not info.batch_coupled:
        assert not coupled
    else:
        assert coupled, "declared batch-coupled but behaves row-wise on this batch"


def test_function_and_module_agree_defaults_included(loss_name, h, info):
    fn_params = {
        n: p.default
        for n, p in inspect.signature(info.fn).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    cls_params = {n: p.default for n, p in inspect.signature(info.cls).parameters.items()}
    assert fn_params == cls_params
    assert fn_params.get("reduction") == "mean" and fn_params.get("validate") is True
    logits, targets = h.make_batch(5, 4, seed=11)
    for reduction in info.reductions:
        torch.testing.assert_close(
            h.make_loss(loss_name, 4, reduction=reduction)(logits, targets),
            h.call_fn(loss_name, logits, targets, reduction=reduction),
            rtol=0,
            atol=0,
        )


def test_target_dtypes_agree(loss_name, h):
    logits, targets = h.make_batch(5, 4, seed=12)
    loss = h.make_loss(loss_name, 4)
    expected = loss(logits, targets)
    for dtype in (
        torch.int64,
        torch.int32,
        torch.uint8,
        torch.float32,
        torch.float64,
        torch.float16,
    ):
        torch.testing.assert_close(loss(logits, targets.to(dtype)), expected, rtol=0, atol=0)


def test_no_global_torch_state_changed(loss_name, h):
    logits, targets = h.make_batch(4, 5, seed=13)
    before = (
        torch.is_grad_enabled(),
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_anomaly_enabled(),
    )
    rng = torch.get_rng_state()
    loss = h.make_loss(loss_name, 5)
    value, _ = _value_and_grad(loss, logits, targets)
    with torch.no_grad():
        loss(logits.half(), targets)
        assert not torch.is_grad_enabled()
    after = (
        torch.is_grad_enabled(),
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_anomaly_enabled(),
    )
    assert after == before
    assert torch.equal(torch.get_rng_state(), rng)


def test_inputs_not_modified(loss_name, h):
    logits, targets = h.make_batch(4, 5, seed=14)
    logits_copy, targets_copy = logits.clone(), targets.clone()
    _value_and_grad(h.make_loss(loss_name, 5), logits, targets)
    assert torch.equal(logits, logits_copy) and torch.equal(targets, targets_copy)


@pytest.mark.parametrize(
    ("case", "argument"),
    [
        ("shape_mismatch", "targets"),
        ("one_d", "logits"),
        ("three_d", "logits"),
        ("int_logits", "logits"),
        ("targets_two", "targets"),
        ("targets_half", "targets"),
        ("targets_negative", "targets"),
    ],
)
def test_validation_errors_name_the_argument(loss_name, h, case, argument):
    logits, targets = h.make_batch(4, 3, seed=15)
    bad = {
        "shape_mismatch": (logits, targets[:, :2]),
        "one_d": (logits[0], targets[0]),
        "three_d": (logits[None], targets[None]),
        "int_logits": (logits.long(), targets),
        "targets_two": (logits, targets.float() * 2),
        "targets_half": (logits, targets.float() * 0.5 + 0.25),
        "targets_negative": (logits, -targets.long()),
    }[case]
    with pytest.raises(ValueError, match=f"`{argument}`"):
        h.call_fn(loss_name, *bad)
    with pytest.raises(ValueError, match="Expected"):
        h.make_loss(loss_name, bad[0].shape[-1])(*bad)


def test_validate_false_skips_the_check(loss_name, h):
    logits, targets = h.make_batch(4, 3, seed=16)
    soft = torch.where(targets, 1.0, 0.0) * 2  # outside {0, 1}: only validation would object
    with pytest.raises(ValueError, match="`targets`"):
        h.call_fn(loss_name, logits, soft)
    value = h.call_fn(loss_name, logits, soft, validate=False)
    assert value.shape == ()
