"""Every loss against an independent float64 implementation of its SPEC §1 formula (defaults and
the non-default kwargs that ``reference.EXTRA_KWARGS`` declares), and the fast forms against
the naive pairwise definitions. The installed library equivalents are in test_peers.py."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import losses
from losses.bpmll import bpmll_factorised, bpmll_naive
from losses.lsep import lsep_factorised, lsep_naive
from losses.msml import msml_factorised, msml_factorised_autograd, msml_naive
from losses.zlpr import zlpr_factorised, zlpr_naive

RTOL, ATOL = 1e-5, 1e-7


def _reference(ref, name, logits, targets, h, **kwargs):
    fn = ref.REFERENCES.get(name)
    assert fn is not None, f"add a float64 reference for {name!r} to tests/losses/reference.py"
    stats = h.stats_for(logits.shape[1])
    params = inspect.signature(fn).parameters
    for key in losses.get_loss_info(name).needs:
        if key in params and key in stats:
            value = stats[key]
            kwargs.setdefault(key, value.tolist() if hasattr(value, "tolist") else value)
    out = fn(logits.double().tolist(), targets.long().tolist(), **kwargs)
    return torch.tensor(out, dtype=torch.float64)


def _check(name, h, ref, logits, targets, **kwargs):
    """The loss with ``kwargs`` against its reference with those it takes (a switch that
    changes the gradient only, such as asl's ``detach_focal``, has no reference parameter)."""
    info = losses.get_loss_info(name)
    ref_params = (
        inspect.signature(ref.REFERENCES[name]).parameters if name in ref.REFERENCES else {}
    )
    value_kwargs = {k: v for k, v in kwargs.items() if k in ref_params}
    expected = _reference(ref, name, logits, targets, h, **value_kwargs)
    mean = h.call_fn(name, logits, targets, reduction="mean", **kwargs)
    assert mean.dtype == torch.float32
    if "none" in info.reductions:
        torch.testing.assert_close(
            h.call_fn(name, logits, targets, reduction="none", **kwargs).double(),
            expected,
            rtol=RTOL,
            atol=ATOL,
        )
        expected = expected.mean()
    torch.testing.assert_close(mean.double(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference(loss_name, h, ref, seed):
    logits, targets = h.make_batch(
        7, 6, seed=20 + seed
    )  # includes a no-positive and an all-positive row
    _check(loss_name, h, ref, logits, targets)


@pytest.mark.parametrize("shape", [(1, 5), (6, 1)])
def test_matches_reference_b1_c1(loss_name, h, ref, shape):
    logits, targets = h.make_batch(*shape, seed=22, edge_rows=False)
    _check(loss_name, h, ref, logits, targets)


def test_matches_reference_non_default_kwargs(extra_kwargs, h, ref):
    """Each case of ``reference.EXTRA_KWARGS``."""
    name, kwargs = extra_kwargs
    logits, targets = h.make_batch(6, 5, seed=23)
    _check(name, h, ref, logits, targets, **kwargs)


def test_extra_kwargs_name_real_hyperparameters(ref):
    for name, cases in ref.EXTRA_KWARGS.items():
        params = inspect.signature(losses.get_loss_info(name).fn).parameters
        for kwargs in cases:
            assert set(kwargs) <= set(params), f"{name}: {sorted(set(kwargs) - set(params))}"


def test_undefined_samples_contribute_zero_and_count():
    """msml/lsep/bpmll/softmax: a row without positives adds 0 and still counts in the mean."""
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -0.1]])
    targets = torch.tensor([[0, 0, 0], [1, 0, 1]])
    for name in ("msml", "lsep", "bpmll", "softmax"):
        none = losses.create_loss(name, reduction="none")(logits, targets)
        assert none[0] == 0 and none[1] > 0
        torch.testing.assert_close(losses.create_loss(name)(logits, targets), none[1] / 2)


_shapes = st.tuples(st.integers(1, 4), st.integers(1, 7))


@st.composite
def _batches(draw):
    b, c = draw(_shapes)
    z = draw(arrays("float64", (b, c), elements=st.floats(-20, 20, allow_nan=False)))
    y = draw(arrays("bool", (b, c)))
    return torch.from_numpy(z), torch.from_numpy(y)


def _grad(fn, z, y):
    z = z.clone().requires_grad_(True)
    value = fn(z, y).sum()
    (grad,) = torch.autograd.grad(value, z)
    return value, grad


@pytest.mark.parametrize(
    ("fast", "naive"),
    [
        (
            lambda z, y: msml_factorised(z, y, reduction="none"),
            lambda z, y: msml_naive(z, y, reduction="none"),
        ),
        (
            lambda z, y: msml_factorised_autograd(z, y, reduction="none"),
            lambda z, y: msml_naive(z, y, reduction="none"),
        ),
        (lambda z, y: lsep_factorised(z, y.double()), lambda z, y: lsep_naive(z, y.double())),
        (lambda z, y: bpmll_factorised(z, y.double()), lambda z, y: bpmll_naive(z, y.double())),
        (lambda z, y: zlpr_factorised(z, y.double()), lambda z, y: zlpr_naive(z, y.double())),
    ],
    ids=["msml", "msml-autograd", "lsep", "bpmll", "zlpr"],
)
@settings(max_examples=60, deadline=None)
@given(batch=_batches())
def test_factorised_equals_naive_pairwise_float64(fast, naive, batch):
    z, y = batch
    value_fast, grad_fast = _grad(fast, z, y)
    value_naive, grad_naive = _grad(naive, z, y)
    assert value_fast.dtype == torch.float64
    torch.testing.assert_close(value_fast, value_naive, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_fast, grad_naive, rtol=1e-9, atol=1e-12)
