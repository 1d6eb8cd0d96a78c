"""The AUC-maximisation losses and optimizers against their peers, with state: MONAI 1.6.1's
``AUCMLoss`` per class (value and gradient in logits, a and b), and LibAUC 2.0.1 (losses,
PESG, PDSCA) where it is right; where we deliberately differ from LibAUC (its defects, listed in
docs/ADD_A_LOSS.md), a test shows the difference.

LibAUC is a test-only peer (``pip install --no-deps libauc==2.0.1``: its own requirements pull
torch_geometric, ogb, transformers; ``libauc.losses`` / ``libauc.optimizers`` import with
torch alone); MONAI is in the test extras. Each is skipped when absent.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import losses

try:
    import monai
    from monai.losses import AUCMLoss as MonaiAUCM
except ImportError:  # pragma: no cover - the test extras install it
    monai = None
try:
    import libauc
    import libauc.losses as libauc_losses
    import libauc.optimizers as libauc_optim
except ImportError:  # pragma: no cover - test-only, --no-deps
    libauc = None

needs_monai = pytest.mark.skipif(monai is None, reason="monai not installed (test extras)")
needs_libauc = pytest.mark.skipif(
    libauc is None, reason="libauc not installed (pip install --no-deps libauc==2.0.1)"
)
MONAI = f"monai-{getattr(monai, '__version__', 'absent')}"
LIBAUC = f"libauc-{getattr(libauc, '__version__', 'absent')}"


def _batch(b, c, seed, dtype=torch.float64, present=True, p_pos=0.3):
    """Logits and float targets; with ``present`` every class has a positive and a negative."""
    gen = torch.Generator().manual_seed(seed)
    z = (torch.randn(b, c, generator=gen, dtype=torch.float64) * 2).to(dtype)
    y = (torch.rand(b, c, generator=gen) < p_pos).to(dtype)
    if present:
        y[0], y[1] = 1, 0
    return z, y


def _aucm(c, seed, margin=1.0, version="v1", imratio=None, name="aucm", **kwargs):
    """Our loss with a random state (a, b in [0, 1], α in [0, 2])."""
    loss = losses.create_loss({"name": name, "margin": margin, "version": version,
                               "imratio": imratio, **kwargs}, stats={"num_classes": c})  # fmt: skip
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        loss.a.copy_(torch.rand(c, generator=gen))
        loss.b.copy_(torch.rand(c, generator=gen))
        loss.alpha.copy_(torch.rand(c, generator=gen) * 2)
    return loss.double()


def _ours_value_and_grads(loss, z, y):
    x = z.clone().requires_grad_()
    value = loss(x, y)
    gx, ga, gb = torch.autograd.grad(value, [x, loss.a, loss.b])
    return value.detach(), gx, ga, gb


def _max_abs(*pairs):
    return max(float((a - b).abs().max()) for a, b in pairs)


# --------------------------------------------------------------------------- MONAI
def _monai_value_and_grads(loss, z, y, margin, version, imratio):
    """Σ_c MONAI's AUCMLoss on class c (scores σ(z_c)) / C, with our state copied into it."""
    x = z.clone().requires_grad_()
    total, params = 0.0, []
    for c in range(z.shape[1]):
        peer = MonaiAUCM(margin=margin, version=version,
                         imratio=None if imratio is None else imratio[c]).double()  # fmt: skip
        with torch.no_grad():
            peer.a.fill_(float(loss.a[c]))
            peer.b.fill_(float(loss.b[c]))
            peer.alpha.fill_(float(loss.alpha[c]))
        total = total + peer(torch.sigmoid(x[:, c : c + 1]), y[:, c : c + 1])
        params.append(peer)
    total = total / z.shape[1]
    grads = torch.autograd.grad(total, [x] + [p.a for p in params] + [p.b for p in params])
    c = z.shape[1]
    return total.detach(), grads[0], torch.stack(grads[1 : 1 + c]), torch.stack(grads[1 + c :])


@needs_monai
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("margin", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("shape", [(32, 14), (8, 3), (2, 1)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_aucm_matches_monai_per_class(shape, margin, version, dtype):
    """Value and gradient (logits, a, b) equal MONAI's AUCMLoss summed over the classes / C,
    every class present in the batch (MONAI is single-class)."""
    b, c = shape
    z, y = _batch(b, c, seed=b + c, dtype=dtype)
    loss = _aucm(c, seed=b, margin=margin, version=version)
    if dtype == torch.float32:
        loss = loss.float()
    ours = _ours_value_and_grads(loss, z, y)
    peer = _monai_value_and_grads(loss.double(), z.double(), y.double(), margin, version, None)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for got, want, what in zip(ours, peer, ("value", "d/dlogits", "d/da", "d/db"), strict=True):
        torch.testing.assert_close(got.double(), want, **tol, msg=f"{what} vs {MONAI}")


@needs_monai
def test_aucm_v1_with_imratio_matches_monai():
    z, y = _batch(24, 4, seed=5)
    imratio = [0.1, 0.4, 0.25, 0.05]
    loss = _aucm(4, seed=5, margin=0.7, imratio=imratio)
    ours = _ours_value_and_grads(loss, z, y)
    peer = _monai_value_and_grads(loss, z, y, 0.7, "v1", imratio)
    for got, want in zip(ours, peer, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@needs_monai
def test_absent_class_contributes_zero_where_monai_v2_does_not():
    """Deviation: a class with no positive in the batch contributes 0 to ours (v1 with the
    batch prior gives 0 by itself, MONAI too); MONAI's v2 still gives that class a value (its
    class mean of the empty side is 0)."""
    z, y = _batch(16, 3, seed=7)
    y[:, 1] = 0  # class 1 absent
    for version in ("v1", "v2"):
        loss = _aucm(3, seed=7, version=version)
        per_class_ours = [
            losses.get_loss_info("aucm").fn(
                z[:, c : c + 1], y[:, c : c + 1], a=loss.a[c : c + 1], b=loss.b[c : c + 1],
                alpha=loss.alpha[c : c + 1], version=version,
            )
            for c in range(3)
        ]  # fmt: skip
        assert per_class_ours[1] == 0
        peer = MonaiAUCM(margin=1.0, version=version).double()
        with torch.no_grad():
            peer.a.fill_(float(loss.a[1]))
            peer.b.fill_(float(loss.b[1]))
            peer.alpha.fill_(float(loss.alpha[1]))
        monai_value = float(peer(torch.sigmoid(z[:, 1:2]), y[:, 1:2]))
        assert (monai_value == 0) is (version == "v1"), (version, monai_value)


@needs_monai
def test_monai_alpha_is_a_parameter_ours_a_buffer():
    """Deviation: MONAI's α is an nn.Parameter, so an optimizer built from ``.parameters()``
    descends on it (the objective is concave in α); ours is a buffer the optimizer moves by
    ascent, and ``.parameters()`` holds exactly the primal a, b."""
    assert "alpha" in dict(MonaiAUCM().named_parameters())
    ours = losses.create_loss("aucm", stats={"num_classes": 3})
    assert set(dict(ours.named_parameters())) == {"a", "b"}
    assert set(ours.state_dict()) == {"a", "b", "alpha", "_extra_state"}


# --------------------------------------------------------------------------- LibAUC losses
def _libauc_multilabel(loss, margin, version):
    peer = libauc_losses.MultiLabelAUCMLoss(
        margin=margin, version=version, num_labels=loss.a.numel(), device="cpu"
    )
    peer.a = loss.a.detach().double().clone().requires_grad_()
    peer.b = loss.b.detach().double().clone().requires_grad_()
    peer.alpha = loss.alpha.detach().double().clone().requires_grad_()
    return peer


def _libauc_value_and_grads(peer, z, y):
    x = z.clone().requires_grad_()
    value = peer(torch.sigmoid(x), y)
    gx, ga, gb = torch.autograd.grad(value, [x, peer.a, peer.b])
    return value.detach(), gx, ga, gb


@needs_libauc
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_aucm_matches_libauc_multilabel_where_it_is_right(version):
    """At margin 1 (where LibAUC's v1 bug does not show) and with every class present, ours
    equals LibAUC's MultiLabelAUCMLoss, value and gradient."""
    z, y = _batch(32, 5, seed=11)
    loss = _aucm(5, seed=11, margin=1.0, version=version)
    ours = _ours_value_and_grads(loss, z, y)
    peer = _libauc_value_and_grads(_libauc_multilabel(loss, 1.0, version), z, y)
    for got, want in zip(ours, peer, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=LIBAUC)


@needs_libauc
def test_libauc_v1_ignores_the_margin_ours_honours_it():
    """Deviation (LibAUC#35): LibAUC's multi-label v1 gives the same value for margin 1.0 and
    0.1; ours changes with the margin (and equals MONAI at 0.1, test above)."""
    z, y = _batch(32, 4, seed=12)
    loss = _aucm(4, seed=12)
    values = {}
    for margin in (1.0, 0.1):
        peer = _libauc_multilabel(loss, margin, "v1")
        values[margin] = float(peer(torch.sigmoid(z), y))
    assert values[1.0] == values[0.1]
    ours = {m: float(_aucm(4, seed=12, margin=m)(z, y)) for m in (1.0, 0.1)}
    assert ours[1.0] != ours[0.1]
    assert ours[1.0] == pytest.approx(values[1.0], rel=1e-12)


@needs_libauc
def test_libauc_v2_is_nan_for_an_absent_class_ours_zero():
    z, y = _batch(16, 3, seed=13)
    y[:, 2] = 0
    loss = _aucm(3, seed=13, version="v2")
    peer = _libauc_multilabel(loss, 1.0, "v2")
    assert torch.isnan(peer(torch.sigmoid(z), y))
    value, gx, _, _ = _ours_value_and_grads(loss, z, y)
    assert torch.isfinite(value) and torch.isfinite(gx).all() and (gx[:, 2] == 0).all()


@needs_libauc
@needs_monai
def test_libauc_single_label_v2_parenthesis_differs_from_monai_and_ours():
    """Deviation (LibAUC#74): LibAUC's AUCMLoss v2 writes mean(h·1{neg} − mean(h·1{pos})) where
    the paper has mean(h|neg) − mean(h|pos); MONAI and ours agree with the paper."""
    z, y = _batch(32, 1, seed=14)
    loss = _aucm(1, seed=14, version="v2")
    peer = libauc_losses.AUCMLoss(margin=1.0, version="v2", device="cpu").double()
    monai_peer = MonaiAUCM(margin=1.0, version="v2").double()
    with torch.no_grad():
        for p in (peer, monai_peer):
            p.a.fill_(float(loss.a[0]))
            p.b.fill_(float(loss.b[0]))
            p.alpha.fill_(float(loss.alpha[0]))
    h = torch.sigmoid(z)
    ours, libauc_value, monai_value = float(loss(z, y)), float(peer(h, y)), float(monai_peer(h, y))
    assert ours == pytest.approx(monai_value, rel=1e-12)
    assert abs(libauc_value - ours) > 1e-3


@needs_libauc
def test_libauc_multilabel_state_is_invisible_to_state_dict_and_parameters():
    """Deviation: LibAUC's a, b, α are plain tensors: an empty state_dict (nothing to
    checkpoint) and no parameters (an optimizer built from .parameters() misses a and b)."""
    peer = libauc_losses.MultiLabelAUCMLoss(num_labels=3, device="cpu")
    assert dict(peer.state_dict()) == {} and not list(peer.parameters())
    ours = losses.create_loss("aucm", stats={"num_classes": 3})
    assert len(list(ours.parameters())) == 2 and "alpha" in ours.state_dict()


@needs_libauc
@pytest.mark.parametrize("margin", [1.0, 0.5, 0.0])
def test_pairwise_auc_matches_libauc_per_class(margin):
    z, y = _batch(24, 4, seed=15)
    x = z.clone().requires_grad_()
    ours = losses.create_loss("pairwise_auc", margin=margin)(x, y)
    (g_ours,) = torch.autograd.grad(ours, x)
    x2 = z.clone().requires_grad_()
    peer = libauc_losses.PairwiseAUCLoss(surr_loss="squared_hinge", hparam=margin)
    total = sum(peer(torch.sigmoid(x2[:, c]), y[:, c]) for c in range(4)) / 4
    (g_peer,) = torch.autograd.grad(total, x2)
    torch.testing.assert_close(ours, total, rtol=1e-10, atol=1e-12, msg=LIBAUC)
    torch.testing.assert_close(g_ours, g_peer, rtol=1e-10, atol=1e-12, msg=LIBAUC)


@needs_libauc
def test_pairwise_auc_absent_class_zero_where_libauc_raises():
    z, y = _batch(12, 2, seed=16)
    y[:, 1] = 0
    with pytest.raises(AssertionError):
        libauc_losses.PairwiseAUCLoss(surr_loss="squared_hinge")(torch.sigmoid(z[:, 1]), y[:, 1])
    x = z.clone().requires_grad_()
    value = losses.create_loss("pairwise_auc")(x, y)
    value.backward()
    assert torch.isfinite(value) and (x.grad[:, 1] == 0).all() and (x.grad[:, 0] != 0).any()


def test_pairwise_auc_sorted_form_equals_the_pair_tensor():
    """The O(B log B) form (large batches) equals the (B, B, C) one, value and gradient."""
    from losses.pairwise_auc import pairwise_auc_naive, pairwise_auc_sorted

    for seed, margin in ((0, 1.0), (1, 0.5), (2, 0.1), (3, 0.0), (4, 1.7)):
        z, y = _batch(40, 6, seed=seed, present=seed % 2 == 0)
        h = torch.sigmoid(z)
        h[3, :] = h[4, :]  # ties
        results = []
        for fn in (pairwise_auc_naive, pairwise_auc_sorted):
            x = h.clone().requires_grad_()
            value = fn(x, y, margin)
            (grad,) = torch.autograd.grad(value.sum(), x)
            results.append((value, grad))
        torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)


@needs_libauc
def test_compauc_phases_match_libauc_and_follow_the_step_not_the_calls():
    """Per phase, ours equals LibAUC's CompositionalAUCLoss (k=1: BCE, then AUC-M); LibAUC
    advances its phase on every call, so one evaluation call between two training steps puts
    it in the wrong phase. Ours follows the training step (on_step_start) only."""
    z, y = _batch(32, 1, seed=17)
    ours = _aucm(1, seed=17, name="compauc", k=1)
    peer = libauc_losses.CompositionalAUCLoss(margin=1.0, k=1, device="cpu").double()
    with torch.no_grad():
        peer.a.fill_(float(ours.a[0]))
        peer.b.fill_(float(ours.b[0]))
        peer.alpha.fill_(float(ours.alpha[0]))
    h = torch.sigmoid(z)
    for step in range(4):
        ours.on_step_start(step)
        torch.testing.assert_close(ours(z, y), peer(h, y).reshape(()), rtol=1e-12, atol=1e-12)
    ours.on_step_start(4)  # "ce"
    expected = ours(z, y)
    with torch.no_grad():
        ours(z, y)  # an evaluation pass: changes nothing
        peer(h, y)  # advances LibAUC's counter
    assert torch.equal(ours(z, y), expected)
    assert not torch.allclose(peer(h, y).reshape(()), expected)  # LibAUC: now "auc"


# --------------------------------------------------------------------------- optimizers
class _Tiny(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = torch.nn.Linear(6, c)

    def forward(self, x):
        return self.fc(x)


def _data(c, steps, seed=21):
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(steps, 16, 6, generator=gen)
    ys = (torch.rand(steps, 16, c, generator=gen) < 0.4).float()
    ys[:, 0], ys[:, 1] = 1, 0
    return xs, ys


@needs_libauc
def test_pesg_tracks_libauc_pesg_step_for_step():
    """Our PESG against LibAUC's, 12 steps with an update_regularizer after 6, on the same
    tiny model and AUC-M (margin 1, where the losses agree): same model, a, b and α after each
    step (float rounding aside), once LibAUC's random reference point is replaced by v_0
    (the deviation tested below) and no weight decay (ours is per group, LibAUC's global)."""
    c, steps = 3, 12
    xs, ys = _data(c, steps)
    torch.manual_seed(0)
    model_a = _Tiny(c)
    model_b = _Tiny(c)
    model_b.load_state_dict(model_a.state_dict())
    ours = losses.create_loss("aucm", stats={"num_classes": c})
    groups = [{"params": list(model_a.parameters()), "weight_decay": 0.0},
              {"params": [ours.a, ours.b], "weight_decay": 0.0}]  # fmt: skip
    opt_a = losses.PESG(groups, lr=0.1, momentum=0.9, epoch_decay=2e-3, dual_losses=[ours])
    peer = libauc_losses.MultiLabelAUCMLoss(margin=1.0, num_labels=c, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt_b = libauc_optim.PESG(model_b.parameters(), loss_fn=peer, lr=0.1, momentum=0.9,
                                  weight_decay=0.0, epoch_decay=2e-3, device="cpu",
                                  verbose=False)  # fmt: skip
    with torch.no_grad():  # LibAUC draws v_ref from N(0, 0.01²); ours is v_0
        for ref, p in zip(opt_b.model_ref, opt_b.params, strict=True):
            ref.copy_(p)
    worst = 0.0
    for t in range(steps):
        if t == 6:
            opt_a.on_lr_decay()
            opt_b.update_regularizer()
        for model, loss, opt, peer_side in ((model_a, ours, opt_a, False), (model_b, peer, opt_b, True)):
            opt.zero_grad(set_to_none=True)
            if peer_side:
                peer.alpha.grad = None
            out = model(xs[t])
            value = loss(torch.sigmoid(out), ys[t]) if peer_side else loss(out, ys[t])
            value.backward()
            opt.step()
        pairs = [(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True)]
        pairs += [(ours.a, peer.a), (ours.b, peer.b), (ours.alpha, peer.alpha)]
        worst = max(worst, _max_abs(*((p.detach(), q.detach()) for p, q in pairs)))
    assert worst < 1e-5, worst
    assert float(ours.alpha.abs().sum()) > 0  # the dual moved


def test_pesg_does_not_touch_the_global_rng_and_starts_at_v0():
    """Deviation: LibAUC's PESG draws its reference point from the global RNG; ours copies
    v_0 and leaves the RNG alone."""
    model = _Tiny(2)
    loss = losses.create_loss("aucm", stats={"num_classes": 2})
    rng = torch.get_rng_state()
    opt = losses.PESG(list(model.parameters()) + [loss.a, loss.b], lr=0.1, dual_losses=[loss])
    assert torch.equal(rng, torch.get_rng_state())
    for p in model.parameters():
        assert torch.equal(opt.state[p]["ref"], p.detach())
    if libauc is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = libauc_losses.MultiLabelAUCMLoss(num_labels=2, device="cpu")
            libauc_optim.PESG(model.parameters(), loss_fn=peer, device="cpu", verbose=False)
        assert not torch.equal(rng, torch.get_rng_state())


def test_pesg_state_round_trips_and_update_regularizer_averages_the_stage():
    xs, ys = _data(2, 5)
    model = _Tiny(2)
    loss = losses.create_loss("aucm", stats={"num_classes": 2})
    params = list(model.parameters()) + [loss.a, loss.b]
    opt = losses.PESG(params, lr=0.05, dual_losses=[loss])
    seen = []
    for t in range(5):
        opt.zero_grad()
        loss(model(xs[t]), ys[t]).backward()
        opt.step()
        seen.append([p.detach().clone() for p in params])
    opt.on_lr_decay()
    for i, p in enumerate(params):
        mean = sum(s[i] for s in seen) / 5
        torch.testing.assert_close(opt.state[p]["ref"], mean)
        assert (opt.state[p]["acc"] == 0).all()
    state = opt.state_dict()
    fresh = losses.PESG(params, lr=0.05, dual_losses=[loss])
    fresh.load_state_dict(state)
    for p in params:
        for key in ("ref", "acc", "momentum_buffer"):
            assert torch.equal(fresh.state[p][key], opt.state[p][key])
    assert fresh.param_groups[0]["stage_steps"] == 0


@needs_libauc
def test_pdsca_tracks_libauc_pdsca_step_for_step():
    """Our compositional AUC + PDSCA against LibAUC's CompositionalAUCLoss + PDSCA (k=1, one
    class, v_ref = v_0 on both sides), 8 steps alternating BCE and AUC-M."""
    steps = 8
    xs, ys = _data(1, steps, seed=22)
    torch.manual_seed(1)
    model_a = _Tiny(1)
    model_b = _Tiny(1)
    model_b.load_state_dict(model_a.state_dict())
    ours = losses.create_loss("compauc", stats={"num_classes": 1})
    groups = [{"params": list(model_a.parameters()), "weight_decay": 0.0},
              {"params": [ours.a, ours.b], "weight_decay": 0.0}]  # fmt: skip
    opt_a = losses.PDSCA(groups, lr=0.1, epoch_decay=2e-3, beta1=0.9, beta2=0.9,
                         dual_losses=[ours])  # fmt: skip
    peer = libauc_losses.CompositionalAUCLoss(margin=1.0, k=1, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt_b = libauc_optim.PDSCA(model_b.parameters(), loss_fn=peer, lr=0.1, lr0=0.1,
                                   beta1=0.9, beta2=0.9, weight_decay=0.0, epoch_decay=2e-3,
                                   device="cpu", verbose=False)  # fmt: skip
    with torch.no_grad():
        for ref, p in zip(opt_b.model_ref, opt_b.params, strict=True):
            ref.copy_(p)
    worst = 0.0
    for t in range(steps):
        ours.on_step_start(t)
        for model, opt, peer_side in ((model_a, opt_a, False), (model_b, opt_b, True)):
            opt.zero_grad(set_to_none=True)
            peer.alpha.grad = None  # LibAUC's PDSCA reads the phase from it (see below)
            out = model(xs[t])
            value = peer(torch.sigmoid(out), ys[t]) if peer_side else ours(out, ys[t])
            value.backward()
            opt.step()
        pairs = list(zip(model_a.parameters(), model_b.parameters(), strict=True))
        pairs += [(ours.a, peer.a), (ours.b, peer.b), (ours.alpha, peer.alpha)]
        worst = max(worst, _max_abs(*((p.detach().reshape(-1), q.detach().reshape(-1))
                                      for p, q in pairs)))  # fmt: skip
    assert worst < 1e-5, worst
    assert float(ours.alpha.abs().sum()) > 0


@needs_libauc
def test_libauc_pdsca_phase_sticks_at_auc_unless_alpha_grad_is_cleared():
    """Deviation: LibAUC's PDSCA takes a step for an inner (BCE) step when α has no gradient;
    α is not among its parameters, so ``zero_grad`` never clears it: after the first AUC step
    every step is taken as an AUC step. Ours asks the loss for the phase of the step."""
    xs, ys = _data(1, 4, seed=23)
    model = _Tiny(1)
    peer = libauc_losses.CompositionalAUCLoss(margin=1.0, k=1, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = libauc_optim.PDSCA(model.parameters(), loss_fn=peer, lr=0.1, device="cpu",
                                 verbose=False)  # fmt: skip
    for t in range(3):  # BCE, AUC, BCE
        opt.zero_grad(set_to_none=True)
        peer(torch.sigmoid(model(xs[t])), ys[t]).backward()
        if t == 2:
            assert peer.alpha.grad is not None  # the BCE step is taken as an AUC step
        opt.step()
    ours = losses.create_loss("compauc", stats={"num_classes": 1})
    phases = []
    for t in range(4):
        ours.on_step_start(t)
        phases.append(ours.phase())
    assert phases == ["ce", "auc", "ce", "auc"]
