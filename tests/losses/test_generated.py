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
    """A loss not declared batch-coupled gives each row the value it has on its own (in every
    state a stateful loss goes through: steps and epochs 0..3); a batch-coupled one does not,
    in at least one of them."""
    logits, targets = h.make_batch(5, 4, seed=10)
    loss = h.make_loss(loss_name, 4)
    coupled = []
    for position in range(4 if info.stateful else 1):
        if info.stateful:
            loss.on_epoch_start(position)
            loss.on_step_start(position)
        whole = loss(logits, targets)
        parts = torch.stack([loss(logits[i : i + 1], targets[i : i + 1]) for i in range(5)])
        coupled.append(not torch.allclose(whole, parts.mean(), rtol=1e-6, atol=1e-7))
    if not info.batch_coupled:
        assert not any(coupled)
    else:
        assert any(coupled), "declared batch-coupled but behaves row-wise on this batch"


def test_function_and_module_agree_defaults_included(loss_name, h, info):
    fn_params = {
        n: p.default
        for n, p in inspect.signature(info.fn).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    cls_params = {n: p.default for n, p in inspect.signature(info.cls).parameters.items()}
    if info.stateful:  # the function takes the state, the module its sizes and optimizer options
        assert set(info.cls.state_names) <= set(fn_params)
        assert set(info.cls.init_only) <= set(cls_params)
        fn_params = {n: d for n, d in fn_params.items() if n not in info.cls.state_names}
        cls_params = {n: d for n, d in cls_params.items() if n not in info.cls.init_only}
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


# --------------------------------------------------------------------------- losses with state
def _perturbed(loss_name, h, num_classes, seed=30):
    """A module of the loss with every tensor of its state set to seeded values (dual
    variables kept >= 0) and its hooks moved on (epoch 3, step 5)."""
    loss = h.make_loss(loss_name, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(loss.parameters()) + list(loss.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen, dtype=tensor.dtype))
    loss.on_epoch_start(3)
    loss.on_step_start(5)
    return loss


def _state(loss):
    out = {}
    for k, v in loss.state_dict().items():
        out[k] = v.detach().clone() if isinstance(v, torch.Tensor) else v
    return out


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def _value_and_all_grads(loss, logits, targets):
    x = logits.detach().clone().requires_grad_(True)
    params = [p for p in loss.parameters() if p.requires_grad]
    value = loss(x, targets)
    grads = torch.autograd.grad(value, [x, *params], allow_unused=True)  # a phase may not use all
    inputs = [x, *params]
    return value.detach(), [
        torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)
    ]


def test_state_is_declared(loss_name, h, info):
    """A loss holds state (parameters, persistent buffers, hook positions) exactly when it is
    registered ``stateful``; then it is a StatefulLoss and its contract says so."""
    loss = h.make_loss(loss_name, 4)
    contract = losses.training_contract(loss)
    if not info.stateful:
        assert not list(loss.parameters()) and loss.state_dict() == {}
        assert not contract.has_state and not contract.param_groups
        return
    assert isinstance(loss, losses.StatefulLoss) and contract.has_state
    assert contract.names == [loss_name] and contract.optimizer == info.optimizer
    params = [p for p in loss.parameters() if p.requires_grad]
    assert [p for g in contract.param_groups for p in g.params] == params
    for group in contract.param_groups:
        assert group.lr_scale == info.param_lr and group.weight_decay == info.param_weight_decay


def test_state_round_trips_through_a_weights_only_checkpoint(loss_name, h, info):
    """state_dict -> torch.save -> torch.load(weights_only=True) -> load_state_dict into a
    fresh module gives the same state, value and gradients (logits and the loss's own
    parameters), bit for bit."""
    if not info.stateful:
        pytest.skip("stateless")
    import io

    loss = _perturbed(loss_name, h, 5)
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    fresh = h.make_loss(loss_name, 5)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    _same_state(_state(loss), _state(fresh))
    logits, targets = h.make_batch(6, 5, seed=31)
    (v1, g1), (v2, g2) = (_value_and_all_grads(m, logits, targets) for m in (loss, fresh))
    assert torch.equal(v1, v2) and all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))
    assert not torch.equal(v1, _value_and_all_grads(h.make_loss(loss_name, 5), logits, targets)[0])


def test_forward_and_backward_change_no_state(loss_name, h, info):
    """What a validation or test pass does to a loss (forward, also under no_grad and in eval
    mode; a backward in training) leaves its state as it was: the state moves only through the
    hooks and the optimizer."""
    if not info.stateful:
        pytest.skip("stateless")
    loss = _perturbed(loss_name, h, 5)
    before = _state(loss)
    logits, targets = h.make_batch(6, 5, seed=32)
    _value_and_all_grads(loss, logits, targets)
    loss.eval()
    with torch.no_grad():
        loss(logits, targets)
    loss.train()
    _same_state(before, _state(loss))


def test_hook_positions_are_explicit(loss_name, h, info):
    """The loss at a hook position depends on that position only, not on how many calls or
    hook calls came before (no hidden counters): stepping through 0..5 equals jumping to 5."""
    if not info.stateful:
        pytest.skip("stateless")
    logits, targets = h.make_batch(6, 5, seed=33)
    walked, jumped = h.make_loss(loss_name, 5), h.make_loss(loss_name, 5)
    for position in range(6):
        walked.on_epoch_start(position)
        walked.on_step_start(position)
        walked(logits, targets)
    jumped.on_epoch_start(5)
    jumped.on_step_start(5)
    assert torch.equal(walked(logits, targets), jumped(logits, targets))
    _same_state(_state(walked), _state(jumped))
