"""MSML Triton kernel under the Triton interpreter (CPU) against the PyTorch references."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module", autouse=True)
def _interpreted(kmod):
    assert kmod.INTERPRETED, "run with TRITON_INTERPRET=1 set before triton is imported"


NAIVE_MAX_C = 128  # the naive reference builds (B, C, C)


def kernel_value_and_grad(kmod, logits, targets, reduction, grad_output=None):
    """Loss and ∂(grad_output · loss)/∂logits through msml_triton's autograd path."""
    x = logits.detach().clone().requires_grad_()
    value = kmod.msml_triton(x, targets, reduction)
    value.backward(torch.ones_like(value) if grad_output is None else grad_output)
    return value.detach(), x.grad


def reference_value_and_grad(fn, logits, targets, reduction, grad_output=None):
    x = logits.detach().float().requires_grad_()  # fp32 maths on the rounded logits
    value = fn(x, targets, reduction)
    value.backward(torch.ones_like(value) if grad_output is None else grad_output)
    return value.detach(), x.grad


def assert_matches(
    kmod, references, tolerances, logits, targets, reduction="mean", grad_output=None
):
    rtol, atol = tolerances[logits.dtype]
    value, grad = kernel_value_and_grad(kmod, logits, targets, reduction, grad_output)
    assert value.dtype == torch.float32
    assert grad.dtype == logits.dtype and grad.shape == logits.shape
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    names = ["factorised"] + (["naive"] if logits.shape[1] <= NAIVE_MAX_C else [])
    for name in names:
        ref_value, ref_grad = reference_value_and_grad(
            references[name], logits, targets, reduction, grad_output
        )
        torch.testing.assert_close(value, ref_value, rtol=rtol, atol=atol, msg=name)
        torch.testing.assert_close(grad.float(), ref_grad, rtol=rtol, atol=atol, msg=name)


@pytest.fixture
def check(kmod, references, tolerances):
    """check(logits, targets, reduction="mean", grad_output=None): kernel == references."""
    return lambda *args, **kwargs: assert_matches(kmod, references, tolerances, *args, **kwargs)


@pytest.fixture
def block_loop(kmod, monkeypatch):
    """Force the multi-pass block loop with 16-column chunks (C=37 → 3 chunks)."""
    monkeypatch.setattr(kmod, "_MAX_SINGLE_BLOCK_C", 8)
    monkeypatch.setattr(kmod, "_LOOP_BLOCK_C", 16)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("C", [1, 2, 14, 37, 100, 300])
def test_single_block_matches_references(check, batch, C, reduction):
    logits, targets = batch(11, C, seed=C)
    check(logits, targets, reduction)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("C", [17, 33, 37, 100])
def test_block_loop_matches_references(kmod, check, batch, block_loop, C, reduction):
    assert not kmod._launch_config(C).single
    logits, targets = batch(5, C, seed=C)
    check(logits, targets, reduction)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(
    ("B", "C", "loop"), [(300, 14, False), (11, 300, False), (7, 37, True)], ids=["C14", "C300", "loop"]
)
def test_programs_stride_over_several_row_tiles(
    kmod, check, batch, request, monkeypatch, B, C, loop, reduction
):
    """A grid smaller than the row tiles (as on a GPU): each program loops over several."""
    if loop:
        request.getfixturevalue("block_loop")
    monkeypatch.setattr(kmod, "INTERPRETER_PROGRAMS", 2)
    cfg = kmod._launch_config(C)
    assert kmod._num_programs(torch.device("cpu"), cfg, -(-B // cfg.rows)) == 2 < -(-B // cfg.rows)
    logits, targets = batch(B, C, seed=B + C)
    check(logits, targets, reduction)


@pytest.mark.parametrize(
    ("B", "C", "loop"), [(300, 14, False), (11, 300, False), (7, 37, True)], ids=["C14", "C300", "loop"]
)
def test_pipelined_launch_configuration(kmod, check, batch, request, monkeypatch, B, C, loop):
    """LaunchConfig.num_stages and .maxnreg reach the launch (the tile loop, or each block-loop
    pass, as a pipelined tl.range; the interpreter runs it in order and ignores the register
    cap) and the result is unchanged."""
    if loop:
        request.getfixturevalue("block_loop")
    monkeypatch.setattr(kmod, "INTERPRETER_PROGRAMS", 2)
    heuristic = kmod._launch_config
    monkeypatch.setattr(
        kmod, "_launch_config", lambda C, block_c=None: replace(heuristic(C, block_c), num_stages=3, maxnreg=128)
    )
    launches = []
    monkeypatch.setattr(kmod, "_msml_fwd_kernel", _Spy(kmod._msml_fwd_kernel, launches))
    logits, targets = batch(B, C, seed=B + C)
    check(logits, targets, "mean")
    assert launches
    assert all(launch["NUM_STAGES"] == 3 and launch["maxnreg"] == 128 for launch in launches)


@pytest.mark.slow
def test_one_above_the_largest_single_block(kmod, check, batch):
    C = kmod._MAX_SINGLE_BLOCK_C + 1  # the heuristic's own switch to the block loop
    assert not kmod._launch_config(C).single
    logits, targets = batch(3, C, seed=1, p_pos=0.01)
    check(logits, targets, "none")


@pytest.mark.parametrize("loop", [False, True], ids=["single", "loop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(check, batch, request, dtype, loop):
    if loop:
        request.getfixturevalue("block_loop")
    logits, targets = batch(9, 37, dtype=dtype, seed=3)
    check(logits, targets, "mean")


@pytest.mark.parametrize("loop", [False, True], ids=["single", "loop"])
def test_edge_rows(kmod, check, loop, request):
    if loop:
        request.getfixturevalue("block_loop")
    C = 20
    logits = torch.randn(7, C) * 4
    targets = torch.zeros(7, C, dtype=torch.bool)
    targets[1] = True  # all positives: every term is 0 (N empty)
    targets[2, 5] = True  # one positive
    targets[3] = True
    targets[3, 7] = False  # one negative
    targets[4, ::2] = True
    logits[5] = torch.linspace(-1e4, 1e4, C)  # extreme but finite logits
    targets[5, :3] = True
    targets[5, -3:] = True
    logits[6] = 0.0  # ties
    targets[6, 10:] = True
    value, grad = kernel_value_and_grad(kmod, logits, targets, "none")
    assert value[0] == 0 and value[1] == 0  # no positives / no negatives
    assert (grad[0] == 0).all() and (grad[1] == 0).all()
    check(logits, targets, "none")


@pytest.mark.parametrize("loop", [False, True], ids=["single", "loop"])
def test_bf16_extremes_finite_like_factorised(
    kmod, references, tolerances, batch, loop, request
):
    """SPEC §1: finite for all finite bf16 logits; the kernel clamps bf16 like losses.prepare."""
    if loop:
        request.getfixturevalue("block_loop")
    _, targets = batch(6, 37, seed=23)
    gen = torch.Generator().manual_seed(24)
    sign = torch.randint(0, 2, targets.shape, generator=gen) * 2.0 - 1.0
    logits = (sign * torch.finfo(torch.bfloat16).max).to(torch.bfloat16)
    logits[2] = torch.linspace(-1e5, 1e5, 37)  # beyond ±65504 and inside it
    value, grad = kernel_value_and_grad(kmod, logits, targets, "none")
    assert torch.isfinite(value).all() and torch.isfinite(grad.float()).all()
    x = logits.detach().clone().requires_grad_()
    ref_value = references["factorised"](x, targets, "none")
    ref_value.sum().backward()
    rtol, atol = tolerances[torch.bfloat16]
    torch.testing.assert_close(value, ref_value.detach(), rtol=rtol, atol=atol)
    torch.testing.assert_close(grad.float(), x.grad.float(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("loop", [False, True], ids=["single", "loop"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nan_logits_give_nan_rows_like_factorised(kmod, references, batch, request, dtype, loop):
    """A NaN logit makes its row's loss NaN (and the mean NaN), as in the PyTorch forms: the
    bf16 clamp keeps NaN (a plain min/max pair would turn it into −65504, a finite loss). A
    NaN among the negatives, among the positives, and a row untouched."""
    if loop:
        request.getfixturevalue("block_loop")
    logits, targets = batch(4, 37, dtype=dtype, seed=31)
    targets[2:] = False
    targets[2:, 5] = True
    logits[2, 9] = float("nan")  # a negative
    logits[3, 5] = float("nan")  # the positive
    value = kmod.msml_triton(logits, targets, "none")
    expected = references["factorised"](logits, targets, "none")
    assert torch.equal(value.isnan(), expected.isnan())
    assert value[2:].isnan().all() and not value[:2].isnan().any()
    assert kmod.msml_triton(logits, targets, "mean").isnan()


@pytest.mark.parametrize(
    "target_dtype",
    [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float32, torch.float16],
)
def test_target_dtypes_agree(kmod, batch, target_dtype):
    logits, targets = batch(6, 14, seed=5)
    expected = kernel_value_and_grad(kmod, logits, targets, "none")
    got = kernel_value_and_grad(kmod, logits, targets.to(target_dtype), "none")
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_non_contiguous_inputs(kmod, check, batch):
    logits, targets = batch(40, 12, seed=7)
    # logits: a transposed buffer (strides (1, 40)); targets: every other column of a wider one
    logits_t = logits.t().contiguous().t()
    wide = torch.zeros(40, 24, dtype=torch.bool)
    wide[:, ::2] = targets
    targets_s = wide[:, ::2]
    assert not logits_t.is_contiguous() and not targets_s.is_contiguous()
    check(logits_t, targets_s, "sum")
    torch.testing.assert_close(
        kernel_value_and_grad(kmod, logits_t, targets_s, "none"),
        kernel_value_and_grad(kmod, logits, targets, "none"),
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_grad_output_scaling(check, batch, reduction):
    logits, targets = batch(10, 14, seed=11)
    shape = (10,) if reduction == "none" else ()
    grad_output = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    check(logits, targets, reduction, grad_output)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_fp16_gradient_with_a_loss_scale(check, batch, reduction):
    """AMP's GradScaler: fp16 logits, grad_output 65536 over a large batch. The 1/B-scaled
    gradient must not be rounded to fp16 before grad_output scales it (underflow to 0)."""
    logits, targets = batch(2048, 14, dtype=torch.float16, seed=29)
    # "none" then .mean() under the scaler: 65536/B per row
    grad_output = torch.tensor(65536.0) if reduction == "mean" else torch.full((2048,), 32.0)
    check(logits, targets, reduction, grad_output)


def test_grad_output_broadcast_and_mixed_ones(kmod, check, batch):
    logits, targets = batch(300, 5, seed=13)  # 300 rows: several programs of 128 rows
    grad_output = torch.ones(300)
    grad_output[200] = -2.0  # one tile scaled, the others left as written
    check(logits, targets, "none", grad_output)
    # an expanded grad_output (stride 0), as loss.sum().backward() produces
    x = logits.clone().requires_grad_()
    (kmod.msml_triton(x, targets, "none").sum() * 3).backward()
    expected = kernel_value_and_grad(kmod, logits, targets, "sum", torch.tensor(3.0))[1]
    torch.testing.assert_close(x.grad, expected)


def test_loss_in_a_larger_graph(kmod, references, batch):
    logits, targets = batch(8, 14, seed=17)
    w = torch.randn(14, 14)
    x = logits.clone().requires_grad_()
    (0.1 * kmod.msml_triton(x @ w, targets) + x.square().mean()).backward()
    y = logits.clone().requires_grad_()
    (0.1 * references["factorised"](y @ w, targets) + y.square().mean()).backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_gradient_written_only_when_needed(kmod, batch, monkeypatch):
    seen = []
    forward = kmod.msml_forward
    monkeypatch.setattr(
        kmod, "msml_forward", lambda *a, **k: seen.append(k["need_grad"]) or forward(*a, **k)
    )
    logits, targets = batch(4, 14)
    x = logits.clone().requires_grad_()
    with torch.no_grad():
        no_grad_value = kmod.msml_triton(x, targets)
    detached_value = kmod.msml_triton(logits, targets)
    grad_value = kmod.msml_triton(x, targets)
    assert seen == [False, False, True]
    assert no_grad_value.grad_fn is None and detached_value.grad_fn is None
    assert grad_value.grad_fn is not None
    torch.testing.assert_close(no_grad_value, grad_value.detach())


def test_second_backward_raises(kmod, batch):
    logits, targets = batch(4, 14)
    x = logits.clone().requires_grad_()
    value = kmod.msml_triton(x, targets)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward only"):
        value.backward()


def test_second_derivative_raises_instead_of_dropping_msml(kmod, batch):
    """create_graph=True: the first derivative is right; a second one must raise, not silently
    treat the kernel's gradient as constant (once_differentiable alone only raises when
    grad_output requires grad, and here it does not)."""
    logits, targets = batch(6, 14, seed=31)
    x = logits.clone().requires_grad_()
    loss = x.square().mean() + kmod.msml_triton(x, targets)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    r = logits.clone().requires_grad_()
    (expected,) = torch.autograd.grad(r.square().mean() + kmod.msml_triton(r, targets), r)
    torch.testing.assert_close(g.detach(), expected)
    with pytest.raises(RuntimeError, match="msml_triton.*second derivative.*factorised"):
        g.square().sum().backward()


def test_empty_batch(kmod):
    value = kmod.msml_triton(torch.zeros(0, 14), torch.zeros(0, 14, dtype=torch.bool), "none")
    assert value.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reduction": "avg"}, "`reduction`"),
        ({"logits": torch.zeros(3, 4, 2)}, "`logits` of shape"),
        ({"targets": torch.zeros(3, 5)}, "`targets` of shape"),
        ({"logits": torch.zeros(3, 4, dtype=torch.float64)}, "`logits` dtype"),
    ],
)
def test_bad_inputs(kmod, kwargs, match):
    args = {"logits": torch.zeros(3, 4), "targets": torch.zeros(3, 4), "reduction": "mean"}
    with pytest.raises(ValueError, match=match):
        kmod.msml_triton(**{**args, **kwargs})


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 6),
    C=st.integers(1, 40),
    p_pos=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
)
def test_property_matches_factorised(kmod, references, B, C, p_pos, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, generator=gen) * scale
    targets = torch.rand(B, C, generator=gen) < p_pos
    value, grad = kernel_value_and_grad(kmod, logits, targets, "none")
    ref_value, ref_grad = reference_value_and_grad(
        references["factorised"], logits, targets, "none"
    )
    torch.testing.assert_close(value, ref_value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_msml_loss_backends_route_to_the_kernel(kmod, batch):
    from losses.msml import msml_loss

    logits, targets = batch(6, 14, seed=19)
    expected = kmod.msml_triton(logits, targets, "none")
    torch.testing.assert_close(
        msml_loss(logits, targets, reduction="none", backend="triton"), expected
    )
    # auto on CPU tensors is the factorised PyTorch form (same value)
    torch.testing.assert_close(msml_loss(logits, targets, reduction="none"), expected)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_in_launch_reduction_over_many_programs(kmod, check, batch, block_loop, monkeypatch, reduction):
    """One program per row (block loop) and 4 partials per step: the last program sums
    11 partials in 3 steps; the ticket counter is back at 0 after every launch."""
    monkeypatch.setattr(kmod, "_RBLOCK", 4)
    logits, targets = batch(11, 37, seed=23)
    for _ in range(2):
        check(logits, targets, reduction)
        counter = kmod._ticket_counter(logits.device)
        assert counter.item() == 0


def test_scalar_loss_is_one_launch(kmod, batch, monkeypatch):
    """mean/sum: the kernel writes the scalar itself (no torch reduction afterwards)."""
    launches = []
    kernel = kmod._msml_fwd_kernel
    monkeypatch.setattr(kmod, "_msml_fwd_kernel", _Spy(kernel, launches))
    logits, targets = batch(300, 14, seed=29)
    with torch.no_grad():
        value = kmod.msml_triton(logits, targets)
    assert len(launches) == 1 and launches[0]["REDUCE"]
    torch.testing.assert_close(value, kmod.msml_triton(logits, targets, "none").mean())


class _Spy:
    """Wraps a kernel: records each launch's keyword arguments, then launches it."""

    def __init__(self, kernel, calls):
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.calls.append(kwargs)
            return self.kernel[grid](*args, **kwargs)

        return launch


@pytest.mark.slow  # ~18 s: 17 configurations, 3 interpreted launches each
def test_sweep_tool_runs_under_the_interpreter(kmod, monkeypatch, capsys):
    """benchmarks.sweep end to end on CPU tensors (do_bench replaced by one call): every
    configuration it tries launches and agrees with the heuristic's value and gradient, and
    each row is shown as it is measured (GPU time is scarce: the tool must not fail there)."""
    import triton.testing

    from benchmarks import sweep

    monkeypatch.setattr(triton.testing, "do_bench", lambda fn, **kwargs: (fn(), 1.0)[1])
    shown = []
    rows = sweep.sweep(8, 14, torch.float32, heuristic_only=True, top=1, show=shown.append,
                       device="cpu")  # fmt: skip
    assert shown == rows and len(rows) == 1 + len(sweep.grid_variants(kmod, rows[0][2]))
    assert all(ok for *_, ok, _ in rows), [r[2] for r in rows if not r[5]]
    assert {r[2].num_stages for r in rows} == {1, 2, 3}
    sweep._show(rows[0], "best: ")
    assert "best: C=14" in capsys.readouterr().out
