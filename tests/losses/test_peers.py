"""Peer conformance: each loss against the installed implementation it follows (its
``LossInfo.peer``), value and gradient, over shapes, dtypes and edge rows, with the peer's
reductions mapped to ours (per-sample loss = mean over classes; "mean" over samples).

Every test id names the peer and its installed version. A loss without an installed peer
must say in its docstring where its formula comes from and where it deviates (last test).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.loss import AsymmetricLossMultiLabel
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

import losses
from losses.cb import class_balanced_weights

TIMM = f"timm-{timm.__version__}"
# timm's multi-label losses (ZlprLoss, TwoWayLoss, DistributionBalancedLoss,
# PolyBinaryCrossEntropy, class weights) arrived in 1.0.31; older timm has none of them
TIMM_1031 = tuple(int(v) for v in timm.__version__.split("+")[0].split(".")[:3]) >= (1, 0, 31)
TORCHVISION = f"torchvision-{torchvision.__version__}"
TORCH = f"torch-{torch.__version__}"


def _counts(C: int) -> Tensor:
    return torch.arange(C) * 37 + 5  # distinct, so the class weights differ


def _asl_timm(detach: bool, **kwargs) -> Callable:
    """timm's reductions mapped to ours: "none" is per element (→ class mean), "batchmean" is
    the official ASL code's sum / B (→ "mean" · C), "sum" the official ``-loss.sum()``."""

    def peer(z, y, reduction):
        timm_reduction = {"none": "none", "mean": "batchmean", "sum": "sum"}[reduction]
        loss = AsymmetricLossMultiLabel(
            disable_torch_grad_focal_loss=detach, reduction=timm_reduction, **kwargs
        )(z, y)
        return loss.mean(dim=1) if reduction == "none" else loss / z.shape[1]

    return peer


def _elementwise(fn: Callable[..., Tensor]) -> Callable:
    """A peer with an element-wise "none" (B, C) mapped to ours."""

    def peer(z, y, reduction):
        per_sample = fn(z, y).mean(dim=1)
        return {"none": per_sample, "mean": per_sample.mean(), "sum": per_sample.sum()}[reduction]

    return peer


def _per_sample(module: Callable[[str], nn.Module]) -> Callable:
    """A peer whose reductions are ours already (per-sample loss, mean / sum over samples)."""
    return lambda z, y, reduction: module(reduction)(z, y)


def _wbce_peer(z, y, reduction):
    """β_P y softplus(−z) + β_N (1−y) softplus(z) as torch's BCE with per-element weights, the
    β counted over the batch (a weight whose count is 0 multiplies no term)."""
    total, n_pos = y.numel(), y.sum()
    weight = torch.where(y == 1, total / n_pos.clamp(min=1), total / (total - n_pos).clamp(min=1))
    return _elementwise(
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, weight=weight, reduction="none")
    )(z, y, reduction)


def _sce_peer(z, y, reduction):
    """Softmax cross-entropy with probability targets y/|P| (all-zero for a row without
    positives: loss 0)."""
    probs = y / y.sum(dim=1, keepdim=True).clamp(min=1)
    return F.cross_entropy(z, probs, reduction=reduction)


@dataclass(frozen=True)
class Case:
    loss: str
    kwargs: dict
    peer: Callable  # (z, y float in the compute dtype, reduction) -> our convention
    fp32_peer: bool = False  # the peer computes in fp32 whatever the input (timm)
    max_abs_logit: float | None = None  # where the loss reduces to the peer


CASES = {
    f"asl-vs-{TIMM}-AsymmetricLossMultiLabel": Case("asl", {}, _asl_timm(False), True),
    f"asl-detach-vs-{TIMM}-AsymmetricLossMultiLabel-disable_grad": Case(
        "asl", {"detach_focal": True}, _asl_timm(True), True
    ),
    f"focal-vs-{TORCHVISION}-sigmoid_focal_loss": Case(
        "focal", {}, _elementwise(lambda z, y: sigmoid_focal_loss(z, y, reduction="none"))
    ),
    f"focal-a0.7-g0.5-vs-{TORCHVISION}-sigmoid_focal_loss": Case(
        "focal",
        {"alpha": 0.7, "gamma": 0.5},
        _elementwise(lambda z, y: sigmoid_focal_loss(z, y, 0.7, 0.5, reduction="none")),
    ),
    f"bce-vs-{TORCH}-binary_cross_entropy_with_logits": Case(
        "bce",
        {},
        _elementwise(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none")),
    ),
    f"bce-vs-{TORCH}-MultiLabelSoftMarginLoss": Case(
        "bce", {}, _per_sample(lambda r: nn.MultiLabelSoftMarginLoss(reduction=r))
    ),
    f"focal-a-1-g0-vs-{TORCH}-MultiLabelSoftMarginLoss": Case(
        "focal",
        {"alpha": -1.0, "gamma": 0.0},
        _per_sample(lambda r: nn.MultiLabelSoftMarginLoss(reduction=r)),
    ),
    # with γ± = 0 and no clip ASL is BCE, where no log argument reaches the eps clamp
    f"asl-g0-clip0-vs-{TORCH}-MultiLabelSoftMarginLoss": Case(
        "asl",
        {"gamma_neg": 0.0, "gamma_pos": 0.0, "clip": 0.0},
        _per_sample(lambda r: nn.MultiLabelSoftMarginLoss(reduction=r)),
        max_abs_logit=15.0,
    ),
    f"wbce-vs-{TORCH}-binary_cross_entropy_with_logits-weight": Case("wbce", {}, _wbce_peer),
    f"softmax-vs-{TORCH}-cross_entropy-probability-targets": Case("softmax", {}, _sce_peer),
}


def _cb_case(beta: float) -> Case:
    def peer(z, y, reduction):
        weight = class_balanced_weights(_counts(z.shape[1]), beta).to(z.dtype)
        return nn.MultiLabelSoftMarginLoss(weight=weight, reduction=reduction)(z, y)

    return Case("cb", {"beta": beta, "class_counts": None}, peer)


CASES[f"cb-vs-{TORCH}-MultiLabelSoftMarginLoss-weight"] = _cb_case(0.999)
CASES[f"cb-b0.9-vs-{TORCH}-MultiLabelSoftMarginLoss-weight"] = _cb_case(0.9)

NUM_SAMPLES = 10_000  # above every class count of _counts(C) for the shapes below


def _timm_rows(make: Callable[[], nn.Module]) -> Callable:
    """A timm loss that returns the batch mean only, applied row by row for our per-sample
    values (its "mean" over a batch of one row is that row's loss)."""

    def peer(z, y, reduction):
        rows = torch.stack([make()(z[i : i + 1], y[i : i + 1]) for i in range(z.shape[0])])
        return {"none": rows, "mean": rows.mean(), "sum": rows.sum()}[reduction]

    return peer


def _timm_twoway(t_pos: float, t_neg: float) -> Callable:
    """timm's TwoWayLoss gives the batch value ("mean"); "sum" is B times it, as ours."""

    def peer(z, y, reduction):
        value = timm.loss.TwoWayLoss(tp=t_pos, tn=t_neg)(z, y)
        return value * z.shape[0] if reduction == "sum" else value

    return peer


def _timm_cb(beta: float) -> Callable:
    def peer(z, y, reduction):
        from timm.loss.class_weights import compute_class_weights

        kind, w = compute_class_weights(_counts(z.shape[1]), NUM_SAMPLES, "effective_num", beta=beta)
        assert kind == "class_weight"
        return _elementwise(
            lambda z, y: F.binary_cross_entropy_with_logits(z, y, weight=w.to(z.dtype), reduction="none")
        )(z, y, reduction)

    return peer


def _timm_db(**kwargs) -> Callable:
    def peer(z, y, reduction):
        loss = timm.loss.DistributionBalancedLoss(
            _counts(z.shape[1]), NUM_SAMPLES, reduction="none", **kwargs
        )
        return _elementwise(lambda z, y: loss(z, y))(z, y, reduction)

    return peer


def _timm_poly(**kwargs) -> Callable:
    return _elementwise(
        lambda z, y: timm.loss.PolyBinaryCrossEntropy(reduction="none", **kwargs)(z, y)
    )


if TIMM_1031:
    import timm.loss

    CASES.update({
        f"zlpr-vs-{TIMM}-ZlprLoss": Case("zlpr", {}, _timm_rows(timm.loss.ZlprLoss), True),
        f"twoway-vs-{TIMM}-TwoWayLoss": Case("twoway", {}, _timm_twoway(4.0, 1.0), True),
        f"twoway-tp2-tn0.5-vs-{TIMM}-TwoWayLoss": Case(
            "twoway", {"t_pos": 2.0, "t_neg": 0.5}, _timm_twoway(2.0, 0.5), True
        ),
        f"cb-vs-{TIMM}-compute_class_weights-effective_num": Case(
            "cb", {"class_counts": None}, _timm_cb(0.999), True
        ),
        f"cb-b0.9-vs-{TIMM}-compute_class_weights-effective_num": Case(
            "cb", {"beta": 0.9, "class_counts": None}, _timm_cb(0.9), True
        ),
        f"db-vs-{TIMM}-DistributionBalancedLoss": Case(
            "db", {"class_counts": None, "num_samples": NUM_SAMPLES}, _timm_db(), True
        ),
        f"db-nofocal-l5-k0.1-vs-{TIMM}-DistributionBalancedLoss": Case(
            "db",
            {"class_counts": None, "num_samples": NUM_SAMPLES, "focal_gamma": 0.0,
             "neg_scale": 5.0, "init_bias": 0.1, "map_alpha": 0.3, "map_beta": 4.0,
             "map_mu": 0.5},
            _timm_db(focal_gamma=0.0, neg_scale=5.0, init_bias=0.1, map_alpha=0.3,
                     map_beta=4.0, map_mu=0.5),
            True,
        ),
        f"poly-vs-{TIMM}-PolyBinaryCrossEntropy": Case("poly", {}, _timm_poly(), True),
        f"poly-e-1-g2-a0.25-vs-{TIMM}-PolyBinaryCrossEntropy": Case(
            "poly",
            {"epsilon": -1.0, "gamma": 2.0, "alpha": 0.25},
            _timm_poly(epsilon=-1.0, gamma=2.0, alpha=0.25),
            True,
        ),
    })  # fmt: skip

# peers compared elsewhere, with the loss's state (tests/losses/test_auc_peers.py): loss -> module
STATEFUL_PEERS = {"aucm": "monai", "pairwise_auc": "libauc", "compauc": "libauc"}

SHAPES = [(1, 1), (1, 14), (3, 1), (7, 5), (64, 14), (33, 80)]
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _batch(shape, dtype, seed=0, scale=3.0, p_pos=0.3, max_abs=None):
    """Logits with a few ±30 entries (saturated σ), bool targets; with B ≥ 3 row 0 has no
    positives and row 1 only positives."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    far = torch.rand(shape, generator=gen) < 0.05
    z = torch.where(far, 30.0 * torch.sign(z), z)
    if max_abs is not None:
        z = z.clamp(-max_abs, max_abs)
    y = torch.rand(shape, generator=gen) < p_pos
    if shape[0] >= 3:
        y[0], y[1] = False, True
    return z.to(dtype), y


def _ours(case: Case, C: int, reduction: str):
    kwargs = dict(case.kwargs, reduction=reduction)
    if "class_counts" in kwargs:
        kwargs["class_counts"] = _counts(C)
    return losses.create_loss(case.loss, **kwargs)


def test_timm_has_the_multilabel_peers_from_1_0_31():
    """timm >= 1.0.31 is what the peers above need (else they are left out, and this says so)."""
    if not TIMM_1031:
        pytest.skip(f"{TIMM} < 1.0.31: ZlprLoss, TwoWayLoss, DistributionBalancedLoss, "
                    "PolyBinaryCrossEntropy and class weights not available")  # fmt: skip
    for name in ("ZlprLoss", "TwoWayLoss", "DistributionBalancedLoss", "PolyBinaryCrossEntropy"):
        assert hasattr(timm.loss, name), name
    covered = {c.loss for n, c in CASES.items() if TIMM in n}
    assert {"zlpr", "twoway", "cb", "db", "poly", "asl"} <= covered


@pytest.mark.skipif(not TIMM_1031, reason=f"{TIMM} < 1.0.31 has no TwoWayLoss")
def test_twoway_differs_from_timm_only_past_its_mask_value():
    """Deviation (docs/ADD_A_LOSS.md): timm masks a set by filling −1e4, so logits of that size
    leak through the mask; ours uses exact sets. Equal at |z| ≤ 1e3, different at 1e4."""
    gen = torch.Generator().manual_seed(3)
    targets = torch.rand(8, 6, generator=gen) < 0.4
    targets[:, 0], targets[:, 1] = True, False
    for level, equal in ((-2e3, True), (-2e4, False)):
        # every logit near `level`: the set members sit below timm's fill value at -2e4
        logits = level + torch.randn(8, 6, generator=gen)
        ours = losses.create_loss("twoway")(logits, targets)
        peer = timm.loss.TwoWayLoss()(logits, targets)
        assert torch.isfinite(ours) and ours < 100  # the terms are O(1) for such logits
        assert torch.allclose(ours, peer, rtol=1e-5) is equal, (level, ours, peer)


def _value_and_grad(fn, x: Tensor, grad_output: Tensor):
    x = x.detach().clone().requires_grad_()
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x, grad_output.to(value.dtype).expand_as(value))
    return value.detach(), grad


def _compare(case: Case, logits: Tensor, targets: Tensor, reduction: str, name: str) -> None:
    """Ours on ``logits`` (any dtype) vs the peer on them in our compute dtype (fp16/bf16 →
    fp32), value and gradient (for a random per-sample grad_output under "none")."""
    dtype = logits.dtype
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    yf = targets.to(compute)
    gen = torch.Generator().manual_seed(1)
    go = torch.rand(logits.shape[0], generator=gen) + 0.5 if reduction == "none" else torch.ones(())
    ours = _ours(case, logits.shape[1], reduction)
    got = _value_and_grad(lambda x: ours(x, targets), logits, go)
    want = _value_and_grad(lambda x: case.peer(x, yf, reduction), logits.to(compute), go)
    if compute == torch.float64 and not case.fp32_peer:
        tol = {"rtol": 1e-10, "atol": 1e-12}
    else:
        tol = {"rtol": 2e-5, "atol": 2e-6}  # fp32 arithmetic on one side at least

    def msg(m: str) -> str:
        return f"{name} ({reduction}, {dtype}): {m}"

    torch.testing.assert_close(got[0].to(compute), want[0].to(compute), **tol, msg=msg)
    assert got[1].dtype == dtype
    # the gradient: ours cast to the logits dtype once at the end, the peer's cast here.
    # Where the peer's is NaN (pow's 0^(γ−1)·0 at a saturated logit for γ < 1), ours must be
    # finite (asl) or the same NaN (focal, which is torchvision's computation)
    grad_tol = tol if dtype in (torch.float32, torch.float64) else {}
    peer_grad = want[1].to(dtype)
    if case.loss == "focal":
        torch.testing.assert_close(got[1], peer_grad, **grad_tol, equal_nan=True, msg=msg)
        return
    assert torch.isfinite(got[1]).all(), msg("non-finite gradient")
    finite = torch.isfinite(peer_grad)
    torch.testing.assert_close(got[1][finite], peer_grad[finite], **grad_tol, msg=msg)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(CASES))
def test_matches_installed_peer(name, shape, dtype, reduction):
    case = CASES[name]
    logits, targets = _batch(shape, dtype, seed=hash(shape) % 1000, max_abs=case.max_abs_logit)
    if reduction not in losses.get_loss_info(case.loss).reductions:
        pytest.skip(f"{case.loss} refuses reduction={reduction!r}")
    _compare(case, logits, targets, reduction, name)


@settings(max_examples=40, deadline=None)
@given(
    detach=st.booleans(),
    gamma_neg=st.floats(0.0, 6.0),
    gamma_pos=st.floats(0.0, 3.0),
    # clip >= 0.05 (ASL's default): timm's 1 − σ(z) is off by up to half an fp32 ulp of 1,
    # which log(1 − p + clip) turns into 3e-8 / clip (5e-6 at clip 0.0117, z ≈ 10: a draw that
    # failed the 2e-6 tolerance on main); no clip keeps |z| ≤ 4 below
    clip=st.one_of(st.just(0.0), st.floats(0.05, 0.3)),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 20)),
    scale=st.floats(0.1, 12.0),
    p_pos=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_asl_matches_timm_for_any_hyperparameters(
    detach, gamma_neg, gamma_pos, clip, shape, scale, p_pos, seed
):
    """timm's AsymmetricLossMultiLabel over its hyper-parameters, both detach settings.

    timm takes 1 − p as 1 − σ(z) in fp32, which loses precision as p → 1 (ours: σ(−z)); a clip
    bounds log(1 − p + clip) away from that, without one the draws keep |z| ≤ 4."""
    kwargs = {"gamma_neg": gamma_neg, "gamma_pos": gamma_pos, "clip": clip}
    case = Case("asl", {**kwargs, "detach_focal": detach}, _asl_timm(detach, **kwargs), True)
    max_abs = 4.0 if clip == 0 else None
    logits, targets = _batch(shape, torch.float32, seed, scale, p_pos, max_abs)
    for reduction in ("none", "mean"):
        _compare(case, logits, targets, reduction, f"asl vs {TIMM}")


@settings(max_examples=40, deadline=None)
@given(
    alpha=st.one_of(st.just(-1.0), st.floats(0.0, 1.0)),
    gamma=st.floats(0.0, 5.0),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 20)),
    scale=st.floats(0.1, 12.0),
    seed=st.integers(0, 2**16),
)
def test_focal_matches_torchvision_for_any_hyperparameters(alpha, gamma, shape, scale, seed):
    peer = _elementwise(lambda z, y: sigmoid_focal_loss(z, y, alpha, gamma, reduction="none"))
    case = Case("focal", {"alpha": alpha, "gamma": gamma}, peer)
    logits, targets = _batch(shape, torch.float64, seed, scale)
    _compare(case, logits, targets, "none", f"focal vs {TORCHVISION}")


def test_asl_default_follows_timm_and_the_official_code():
    """The default is timm's (and the official AsymmetricLoss's): gradient through the
    focusing weight; the detached variant differs in gradient only."""
    timm_default = inspect.signature(AsymmetricLossMultiLabel).parameters
    assert timm_default["disable_torch_grad_focal_loss"].default is False, TIMM
    ours = inspect.signature(losses.get_loss_info("asl").fn).parameters
    assert ours["detach_focal"].default is False
    for name in ("gamma_neg", "gamma_pos", "clip", "eps"):
        assert ours[name].default == timm_default[name].default, f"{name} vs {TIMM}"
    logits, targets = _batch((16, 14), torch.float64)
    plain = _value_and_grad(lambda x: losses.create_loss("asl")(x, targets), logits, torch.ones(()))
    detached = _value_and_grad(
        lambda x: losses.create_loss("asl", detach_focal=True)(x, targets), logits, torch.ones(())
    )
    torch.testing.assert_close(plain[0], detached[0])
    assert not torch.allclose(plain[1], detached[1])


def test_every_peer_is_tested_and_every_other_loss_cites_its_source(loss_name, info):
    """A loss that names an installed peer has a conformance case here; one that does not
    cites the paper's formula (Source:), the official code if any, and its deviations."""
    tested = {case.loss for case in CASES.values()}
    if info.peer:
        if loss_name in STATEFUL_PEERS:  # compared with its state in test_auc_peers.py
            assert STATEFUL_PEERS[loss_name] in info.peer
            return
        if info.peer.startswith("timm") and not TIMM_1031:
            pytest.skip(f"{TIMM} < 1.0.31 lacks the peer {info.peer}")
        assert loss_name in tested, f"add a conformance case for {loss_name!r} ({info.peer})"
        return
    assert loss_name not in tested, f"{loss_name!r} has a peer test: name it in peer="
    doc = (inspect.getmodule(info.fn).__doc__ or "") + (info.fn.__doc__ or "")
    for word in ("Source:", "Deviation", "reference.py"):
        assert word in doc, f"{loss_name}'s docstring lacks {word!r}"
