"""The registry: names, spec grammar, composites, kwargs, statistics and error messages."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import losses
from losses import _registry
from losses._common import FunctionalLoss

REQUIRED = {
    "bce",
    "wbce",
    "focal",
    "asl",
    "cb",
    "msml",
    "lsep",
    "bpmll",
    "zlpr",
    "twoway",
    "hill",
    "softmax",
}


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(5, 4, generator=gen), torch.rand(5, 4, generator=gen) < 0.5


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that a test may add to; restored afterwards."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))


def test_list_losses_sorted_and_complete():
    names = losses.list_losses()
    assert names == sorted(names)
    assert REQUIRED <= set(names)


def test_import_lists_the_losses_in_a_fresh_interpreter():
    out = subprocess.run(
        [sys.executable, "-c", "import losses; print(losses.list_losses())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert all(f"'{name}'" in out for name in REQUIRED)


def test_loss_info(loss_name, info):
    assert info.name == loss_name
    assert issubclass(info.cls, nn.Module) and callable(info.fn)
    assert info.reference
    assert set(info.reductions) <= set(losses.REDUCTIONS) and "mean" in info.reductions
    stats = {"class_counts": [1, 2, 3], "num_samples": 10}
    assert isinstance(losses.create_loss(loss_name, stats=stats), info.cls)


def test_declared_properties(loss_name, info):
    """What a loss declares is consistent (whether it is batch-coupled is read from the
    registry here, and checked against its behaviour in test_generated.py): only a
    batch-coupled loss may refuse "none", and each dataset statistic it needs is a keyword
    argument of the loss."""
    if "none" not in info.reductions:
        assert info.batch_coupled, f"{loss_name} refuses 'none' but is not batch-coupled"
    params = inspect.signature(info.cls).parameters
    assert all(key in params for key in info.needs), (loss_name, info.needs)
    if loss_name == "cb":
        assert info.needs == ("class_counts",)
    if loss_name == "twoway":
        assert "none" not in info.reductions


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"one of \[.*'msml'.*\] but got 'nope'"):
        losses.create_loss("nope")
    with pytest.raises(ValueError, match="'nope'"):
        losses.get_loss_info("nope")
    with pytest.raises(ValueError, match="'msmll'"):
        losses.create_loss("bce+0.1*msmll")


def test_single_name_gives_the_loss_itself():
    loss = losses.create_loss("msml")
    assert type(loss) is losses.get_loss_info("msml").cls


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bce+0.1*msml", [("bce", 1.0), ("msml", 0.1)]),
        ("0.5*asl + 0.5*zlpr", [("asl", 0.5), ("zlpr", 0.5)]),
        ("msml*2", [("msml", 2.0)]),
        ("1e+0*bce+ 2.5E-1 * lsep", [("bce", 1.0), ("lsep", 0.25)]),
        ({"name": "asl", "weight": 0.3}, [("asl", 0.3)]),
        ([{"name": "bce"}, {"name": "msml", "weight": 0.1}], [("bce", 1.0), ("msml", 0.1)]),
    ],
)
def test_weighted_sum_specs(spec, expected, batch):
    loss = losses.create_loss(spec)
    assert isinstance(loss, losses.WeightedSumLoss)
    assert list(zip(loss.names, loss.weights, strict=True)) == expected
    logits, targets = batch
    total = sum(w * losses.create_loss(n)(logits, targets) for n, w in expected)
    torch.testing.assert_close(loss(logits, targets), total)


def test_composite_exposes_its_terms(batch):
    loss = losses.create_loss("bce+0.1*msml+bce")
    assert isinstance(loss, nn.Module) and len(loss.terms) == 3
    assert loss.names == ("bce", "msml", "bce") and loss.weights == (1.0, 0.1, 1.0)
    assert all(
        isinstance(t, losses.get_loss_info(n).cls)
        for t, n in zip(loss.terms, loss.names, strict=True)
    )


@settings(max_examples=25, deadline=None)
@given(
    spec=st.sampled_from(["bce+0.1*msml", "0.5*asl+0.5*focal+lsep", "wbce+2*twoway", "cb+sce", "cb+softmax"]),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16]),
    target_dtype=st.sampled_from([torch.bool, torch.int64, torch.float32, torch.float64]),
    shape=st.tuples(st.integers(1, 6), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_composite_equals_the_weighted_sum_of_its_terms(spec, dtype, target_dtype, shape, seed):
    """The composite's shared work (one validation, one target conversion, validate=False for
    the terms) changes neither value nor gradient: the plain weighted sum of the registered
    modules is the reference."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=gen) * 4).to(dtype)
    targets = (torch.rand(shape, generator=gen) < 0.4).to(target_dtype)
    stats = {"class_counts": torch.arange(shape[1]) + 3}
    composite = losses.create_loss(spec, stats=stats)
    terms = [
        (w, losses.create_loss(n, stats=stats))
        for n, w in zip(composite.names, composite.weights, strict=True)
    ]

    def value_and_grad(fn):
        x = logits.clone().requires_grad_()
        value = fn(x)
        (grad,) = torch.autograd.grad(value, x)
        return value, grad

    got = value_and_grad(lambda x: composite(x, targets))
    want = value_and_grad(lambda x: sum(w * term(x, targets) for w, term in terms))
    assert got[1].dtype == dtype
    tol = {} if dtype in (torch.float32, torch.float64) else {"rtol": 1e-2, "atol": 1e-5}
    torch.testing.assert_close(got[0], want[0], **tol)
    torch.testing.assert_close(got[1], want[1], **tol)


def test_composite_validates_once_and_converts_targets_once(monkeypatch, batch):
    from losses import _common

    checked, seen = [], []
    real = _common.validate_inputs
    monkeypatch.setattr(_registry, "validate_inputs", lambda *a: checked.append(1) or real(*a))
    monkeypatch.setattr(_common, "validate_inputs", lambda *a: pytest.fail("a term validated"))
    loss = losses.create_loss("bce+0.1*msml+asl")
    for term in loss.terms:  # record what each term's function receives
        fn = term.fn
        term.fn = lambda z, y, _fn=fn, **kw: (
            seen.append((y.dtype, kw["validate"])) or _fn(z, y, **kw)
        )
    logits, targets = batch
    loss(logits, targets)
    assert checked == [1] and seen == [(torch.float32, False)] * 3
    with pytest.raises(ValueError, match="`targets`"):
        loss(logits, targets.float() * 2)
    checked.clear()
    losses.create_loss("bce+msml", validate=False)(logits, targets.float() * 2)  # soft targets
    assert checked == []


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty term"),
        ("bce++msml", "empty term"),
        ("bce+", "empty term"),
        ("0.1**msml", "'0.1\\*\\*msml'"),
        ("0.1*msml*2", "'0.1\\*msml\\*2'"),
        ("abc*msml", "'abc'"),
        ("-1*msml", "weight.*-1"),
        ("inf*msml", "weight.*inf"),
        ("nan*msml", "weight.*nan"),
        ({"weight": 1.0}, "'name'"),
        ({"name": "bce", "weight": "x"}, "weight.*'x'"),
        ({"name": "bce", "weight": True}, "weight"),
        ([], "non-empty"),
        (["bce"], "mapping"),
        (3, "int"),
    ],
)
def test_malformed_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        losses.create_loss(spec)


def test_unknown_kwarg_names_it_and_lists_valid_ones():
    with pytest.raises(ValueError, match=r"among \[.*'gamma_neg'.*\] but got unknown \['gama'\]"):
        losses.create_loss("asl", gama=2)
    with pytest.raises(ValueError, match="'gama'"):
        losses.create_loss({"name": "asl", "gama": 2})


def test_kwargs_reach_every_term_that_accepts_them(batch):
    loss = losses.create_loss("bce+0.5*asl", reduction="none", gamma_neg=2.0)
    bce, asl = loss.terms
    assert bce.options["reduction"] == asl.options["reduction"] == "none"
    assert asl.options["gamma_neg"] == 2.0 and "gamma_neg" not in bce.options
    assert loss(*batch).shape == (5,)
    with pytest.raises(ValueError, match="'gamma_nope'"):
        losses.create_loss("bce+0.5*asl", gamma_nope=2.0)


def test_term_kwargs_win_over_shared_kwargs():
    loss = losses.create_loss(
        [{"name": "asl", "gamma_neg": 1.0}, {"name": "focal"}], gamma=3.0, gamma_neg=5.0
    )
    asl, focal = loss.terms
    assert asl.options["gamma_neg"] == 1.0 and focal.options["gamma"] == 3.0


def test_none_kwargs_are_dropped():
    loss = losses.create_loss("asl", gamma_neg=None, unknown_but_none=None)
    assert loss.options["gamma_neg"] == 4.0
    assert losses.create_loss({"name": "asl", "clip": None}).options["clip"] == 0.05


def test_refused_reduction_is_a_value_error():
    with pytest.raises(ValueError, match=r"reduction.*twoway.*'none'.*batch"):
        losses.create_loss("twoway", reduction="none")
    with pytest.raises(ValueError, match=r"reduction.*'avg'"):
        losses.create_loss("bce", reduction="avg")


def test_terms_cannot_mix_none_with_a_scalar_reduction():
    """(B,) per-sample values plus a scalar broadcast silently into a wrong (B,) 'per-sample' loss."""
    with pytest.raises(ValueError, match=r"reduction.*'bce': 'none'.*'msml': 'mean'"):
        losses.create_loss([{"name": "bce", "reduction": "none"}, {"name": "msml"}])
    with pytest.raises(ValueError, match=r"reduction.*'none'.*'twoway': 'mean'"):
        losses.create_loss([{"name": "bce", "reduction": "none"}, {"name": "twoway"}])
    with pytest.raises(ValueError, match=r"'bce': 'none'.*'bce#2': 'mean'"):
        losses.create_loss([{"name": "bce", "reduction": "none"}, {"name": "bce"}])
    # all "none", or scalar reductions mixed (a deliberate scale), stay allowed
    losses.create_loss("bce+msml", reduction="none")
    losses.create_loss([{"name": "bce", "reduction": "sum"}, {"name": "msml"}])


def test_stats_feed_needs(batch):
    logits, targets = batch
    counts = torch.tensor([10, 200, 3, 40])
    via_stats = losses.create_loss("cb", stats={"class_counts": counts, "num_samples": 500})
    direct = losses.create_loss("cb", class_counts=counts)
    torch.testing.assert_close(via_stats(logits, targets), direct(logits, targets))
    # a composite takes the stats for the term that needs them; others ignore them
    composite = losses.create_loss("bce+cb", stats={"class_counts": counts})
    assert torch.isfinite(composite(logits, targets))
    assert losses.create_loss("bce", stats={"class_counts": counts}) is not None


@pytest.mark.parametrize("stats", [None, {}, {"num_samples": 3}, {"class_counts": None}])
def test_missing_stats_say_what_to_pass(stats):
    with pytest.raises(
        ValueError, match=r"'cb' needs the dataset statistic 'class_counts'.*stats="
    ):
        losses.create_loss("0.5*bce+cb", stats=stats)


def test_class_counts_must_match_classes(batch):
    loss = losses.create_loss("cb", class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match=r"`class_counts`.*\(4,\).*\(3,\)"):
        loss(*batch)
    with pytest.raises(ValueError, match="`class_counts`"):
        losses.create_loss("cb", class_counts=[1, -2, 3, 4])(*batch)


@pytest.mark.parametrize("kwargs", [{"t_pos": 0.0}, {"t_neg": 0}, {"t_pos": -1.0}])
def test_twoway_temperatures_must_be_positive(batch, kwargs):
    """T = 0 divides by zero (NaN loss), T < 0 flips the soft maximum into a soft minimum."""
    (name,) = kwargs
    with pytest.raises(ValueError, match=rf"`{name}`.*> 0.*{kwargs[name]}"):
        losses.create_loss("twoway", **kwargs)(*batch)


def test_cb_module_moves_counts_with_it(batch):
    loss = losses.create_loss("cb", class_counts=torch.tensor([1, 2, 3, 4]))
    assert "class_counts" in dict(loss.named_buffers())


def test_register_a_new_loss_and_use_it(scratch_registry, batch):
    def double_bce(
        logits, targets, *, factor: float = 2.0, reduction: str = "mean", validate: bool = True
    ):
        return factor * losses.create_loss("bce", reduction=reduction, validate=validate)(
            logits, targets
        )

    @losses.register_loss("double_bce", reference="test")
    class DoubleBCE(FunctionalLoss, fn=double_bce):
        pass

    assert "double_bce" in losses.list_losses()
    assert losses.get_loss_info("double_bce").fn is double_bce
    logits, targets = batch
    loss = losses.create_loss("bce+double_bce", factor=3.0)
    torch.testing.assert_close(
        loss(logits, targets), 4 * losses.create_loss("bce")(logits, targets)
    )


def test_register_with_a_plain_module(scratch_registry, batch):
    @losses.register_loss("plain")
    class Plain(nn.Module):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, logits, targets):
            return self.scale * logits.mean()

    assert losses.create_loss("plain", scale=2.0).scale == 2.0
    with pytest.raises(ValueError, match="'reduction'"):
        losses.create_loss("plain", reduction="sum")


def test_register_rejects_bad_names_duplicates_and_non_modules(scratch_registry):
    with pytest.raises(ValueError, match="lowercase identifier"):
        losses.register_loss("Bad-Name")
    with pytest.raises(ValueError, match="already registered"):
        losses.register_loss("bce")(type("Other", (nn.Module,), {}))
    with pytest.raises(ValueError, match="nn.Module"):
        losses.register_loss("fn_only")(lambda x: x)
    with pytest.raises(ValueError, match="reductions"):
        losses.register_loss("odd", reductions=("median",))


def test_module_rejects_unknown_kwargs_directly():
    with pytest.raises(TypeError, match="gama"):
        losses.get_loss_info("asl").cls(gama=1)
    with pytest.raises(TypeError, match="class_counts"):
        losses.get_loss_info("cb").cls()


def test_a_former_name_builds_the_renamed_loss(batch):
    """``sce`` (the softmax loss's name before it was renamed) still builds it, alone and in a
    sum, and is not listed as a loss of its own (the generated tests run each loss once)."""
    assert losses.loss_aliases() == {"sce": "softmax"}
    assert "sce" not in losses.list_losses()
    assert losses.get_loss_info("sce") is losses.get_loss_info("softmax")
    logits, targets = batch
    old, new = losses.create_loss("bce+0.5*sce"), losses.create_loss("bce+0.5*softmax")
    assert torch.equal(old(logits, targets), new(logits, targets))
    assert type(losses.create_loss({"name": "sce"})) is type(losses.create_loss("softmax"))


def test_an_alias_cannot_take_a_name(scratch_registry, monkeypatch):
    monkeypatch.setattr(_registry, "_ALIASES", dict(_registry._ALIASES))

    class Dummy(nn.Module):
        def forward(self, logits, targets):
            return logits.sum()

    with pytest.raises(ValueError, match="taken"):
        losses.register_loss("dummy", aliases=("bce",))(Dummy)
    with pytest.raises(ValueError, match="alias of 'softmax'"):
        losses.register_loss("sce")(Dummy)
