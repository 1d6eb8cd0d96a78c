"""Shared helpers: masked log-sum-exp, reductions, dtype handling, validation messages."""

from __future__ import annotations

import math

import pytest
import torch

from losses._common import masked_logsumexp, pair_logsumexp, prepare, reduce_loss, softplus


def test_masked_logsumexp_matches_logsumexp_and_handles_empty_sets():
    x = torch.tensor(
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [1e4, -1e4, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, False]])
    out = masked_logsumexp(x, mask, dim=1)
    torch.testing.assert_close(out[0], torch.logsumexp(x[0, [0, 2]], 0))
    assert out[1] == -math.inf
    torch.testing.assert_close(out[2], torch.tensor(1e4, dtype=torch.float64))
    # gradient through a consumer that maps −inf to 0 (as the losses do): finite, 0 where masked
    softplus(out).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[~mask] == 0).all() and (x.grad[1] == 0).all()


def test_pair_logsumexp_is_the_double_sum():
    z = torch.tensor([[0.5, -1.0, 2.0, 0.0]], dtype=torch.float64)
    pos = torch.tensor([[True, False, True, False]])
    expected = math.log(sum(math.exp(z[0, n] - z[0, p]) for p in (0, 2) for n in (1, 3)))
    assert pair_logsumexp(z, pos, ~pos).item() == pytest.approx(expected, rel=1e-12)


def test_reduce_loss_rejects_unknown_reduction():
    with pytest.raises(ValueError, match=r"`reduction`.*\['mean', 'sum', 'none'\].*'avg'"):
        reduce_loss(torch.ones(3), "avg")


@pytest.mark.parametrize(
    ("dtype", "compute"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_prepare_compute_dtype(dtype, compute):
    z, y = prepare(torch.zeros(2, 3, dtype=dtype), torch.ones(2, 3, dtype=torch.bool))
    assert z.dtype == compute and y.dtype == compute and y.sum() == 6


def test_validation_messages_show_allowed_and_received():
    z = torch.zeros(2, 3)
    with pytest.raises(
        ValueError, match=r"`logits` to be a floating tensor .* but got dtype torch.int64"
    ):
        prepare(z.long(), z)
    with pytest.raises(
        ValueError, match=r"`targets` to have the shape of `logits` \(2, 3\) but got shape \(3, 2\)"
    ):
        prepare(z, z.T)
    with pytest.raises(
        ValueError, match=r"`logits` to be a 2-D tensor of shape \(B, C\) but got shape \(3,\)"
    ):
        prepare(z[0], z[0])
    with pytest.raises(
        ValueError, match=r"`targets` to contain only 0 and 1 but got values \[0.5\]"
    ):
        prepare(z, z + 0.5)
    with pytest.raises(ValueError, match="`targets` to be a torch.Tensor but got list"):
        prepare(z, [[0, 1, 0], [1, 0, 0]])
    prepare(z.long(), z + 0.5, validate=False)  # no checks at all
