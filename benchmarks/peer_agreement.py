"""How closely the losses agree with their installed peers: the largest absolute difference of
value and of gradient (in the logits) per loss and peer, over a fixed set of batches.

    python -m benchmarks.peer_agreement [--dtype float32|float64] [--batches 20]

Batches: B=64, C=14, logits N(0, 3²) with 5% of the entries at ±30 (saturated σ), bool targets
with 30% positives, every class with a positive and a negative (the AUC losses' peers are
per class and undefined otherwise), seeds 0..batches−1. The AUC losses run with a random state
(a, b ∈ [0, 1], α ∈ [0, 2]) copied into the peer. The optimizers: our PESG / PDSCA against
LibAUC's on a tiny model, the largest absolute parameter difference over 12 / 8 steps (their
random reference point replaced by v_0, see losses/_optim.py). The tests that hold these
differences to tolerances are tests/losses/test_peers.py and tests/losses/test_auc_peers.py.
A peer that is not installed is reported as such.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

import losses

B, C = 64, 14


def _batch(seed: int, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(B, C, generator=gen, dtype=torch.float64) * 3
    far = torch.rand(B, C, generator=gen) < 0.05
    z = torch.where(far, 30.0 * torch.sign(z), z)
    y = (torch.rand(B, C, generator=gen) < 0.3).double()
    y[0], y[1] = 1, 0
    return z.to(dtype), y.to(dtype)


def _counts() -> torch.Tensor:
    return torch.arange(C) * 37 + 5


def _with_state(loss, seed: int):
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        loss.a.copy_(torch.rand(C, generator=gen))
        loss.b.copy_(torch.rand(C, generator=gen))
        loss.alpha.copy_(torch.rand(C, generator=gen) * 2)
    return loss


def _grad(fn: Callable, z: torch.Tensor):
    x = z.detach().clone().requires_grad_()
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _per_class(make_peer: Callable, loss, h_of: Callable = torch.sigmoid) -> Callable:
    """Σ_c peer_c(σ(z_c), y_c) / C, the peer given class c's state."""

    def run(x, y):
        return sum(make_peer(c, loss)(h_of(x[:, c : c + 1]), y[:, c : c + 1]).reshape(())
                   for c in range(C)) / C  # fmt: skip

    return run


def _fill(peer, loss, c):
    with torch.no_grad():
        for name in ("a", "b", "alpha"):
            getattr(peer, name).fill_(float(getattr(loss, name)[c]))
    return peer


def _pairs(dtype: torch.dtype) -> dict[str, tuple[Callable, Callable] | str]:
    """name -> (ours(seed) -> fn(x, y), peer(seed) -> fn(x, y)), or why it is absent."""
    out: dict = {}
    import timm

    try:
        import timm.loss as tl
        from timm.loss.class_weights import compute_class_weights

        def elementwise(fn):
            return lambda x, y: fn(x, y).mean()

        out[f"zlpr vs timm-{timm.__version__} ZlprLoss"] = (
            lambda s: losses.create_loss("zlpr"), lambda s: tl.ZlprLoss())
        out[f"twoway vs timm-{timm.__version__} TwoWayLoss"] = (
            lambda s: losses.create_loss("twoway"), lambda s: tl.TwoWayLoss())
        weights = compute_class_weights(_counts(), 10_000, "effective_num", beta=0.999)[1]
        out[f"cb vs timm-{timm.__version__} compute_class_weights"] = (
            lambda s: losses.create_loss("cb", class_counts=_counts()),
            lambda s: elementwise(lambda x, y: F.binary_cross_entropy_with_logits(
                x, y, weight=weights.to(x.dtype), reduction="none")))  # fmt: skip
        out[f"db vs timm-{timm.__version__} DistributionBalancedLoss"] = (
            lambda s: losses.create_loss("db", class_counts=_counts(), num_samples=10_000),
            lambda s: tl.DistributionBalancedLoss(_counts(), 10_000))
        out[f"poly vs timm-{timm.__version__} PolyBinaryCrossEntropy"] = (
            lambda s: losses.create_loss("poly"), lambda s: tl.PolyBinaryCrossEntropy())
    except (ImportError, AttributeError):
        out["zlpr/twoway/cb/db/poly vs timm"] = f"timm {timm.__version__} < 1.0.31"
    try:
        import monai
        from monai.losses import AUCMLoss

        for version in ("v1", "v2"):
            for margin in (1.0, 0.5):
                spec = {"name": "aucm", "version": version, "margin": margin}

                def ours(s, spec=spec):
                    return _with_state(losses.create_loss(spec, stats={"num_classes": C}), s).to(dtype)

                def peer(s, spec=spec):
                    def make(c, loss):
                        module = AUCMLoss(margin=spec["margin"], version=spec["version"])
                        return _fill(module.to(dtype), loss, c)

                    return _per_class(make, ours(s))

                out[f"aucm {version} m={margin} vs monai-{monai.__version__} AUCMLoss"] = (ours, peer)
    except ImportError:
        out["aucm vs monai"] = "monai not installed"
    try:
        import libauc
        import libauc.losses as ll

        def ours_ml(s, version="v1"):
            spec = {"name": "aucm", "version": version}
            return _with_state(losses.create_loss(spec, stats={"num_classes": C}), s).to(dtype)

        def peer_ml(s, version="v1"):
            loss = ours_ml(s, version)
            peer = ll.MultiLabelAUCMLoss(margin=1.0, version=version, num_labels=C, device="cpu")
            peer.a, peer.b, peer.alpha = (getattr(loss, n).detach().clone() for n in ("a", "b", "alpha"))
            return lambda x, y: peer(torch.sigmoid(x), y)

        for version in ("v1", "v2"):
            out[f"aucm {version} m=1 vs libauc-{libauc.__version__} MultiLabelAUCMLoss"] = (
                lambda s, v=version: ours_ml(s, v), lambda s, v=version: peer_ml(s, v))
        for margin in (1.0, 0.5):
            pair = ll.PairwiseAUCLoss(surr_loss="squared_hinge", hparam=margin)
            out[f"pairwise_auc m={margin} vs libauc-{libauc.__version__} PairwiseAUCLoss"] = (
                lambda s, m=margin: losses.create_loss("pairwise_auc", margin=m),
                lambda s, p=pair: (lambda x, y: sum(p(torch.sigmoid(x[:, c]), y[:, c])
                                                     for c in range(C)) / C))  # fmt: skip
    except ImportError:
        out["aucm/pairwise_auc/compauc vs libauc"] = "libauc not installed (--no-deps)"
    return out


def agreement(dtype: torch.dtype, batches: int) -> list[tuple[str, str, str]]:
    """Rows (pair, max |Δ value|, max |Δ grad|)."""
    rows = []
    for name, pair in _pairs(dtype).items():
        if isinstance(pair, str):
            rows.append((name, "absent", pair))
            continue
        worst_v = worst_g = 0.0
        for seed in range(batches):
            z, y = _batch(seed, dtype)
            ours, peer = pair[0](seed), pair[1](seed)
            v1, g1 = _grad(lambda x, o=ours, t=y: o(x, t), z)
            v2, g2 = _grad(lambda x, p=peer, t=y: p(x, t), z)
            worst_v = max(worst_v, float((v1.double() - v2.double()).abs().max()))
            finite = torch.isfinite(g2)
            worst_g = max(worst_g, float((g1 - g2)[finite].double().abs().max()))
        rows.append((name, f"{worst_v:.2e}", f"{worst_g:.2e}"))
    return rows


def optimizer_agreement() -> list[tuple[str, str]]:
    """(pair, max |Δ parameter| over the steps) for PESG and PDSCA against LibAUC's."""
    try:
        import libauc
        import libauc.losses as ll
        import libauc.optimizers as lo
    except ImportError:
        return [("PESG / PDSCA vs libauc", "libauc not installed")]
    rows = []
    for name, steps in (("pesg", 12), ("pdsca", 8)):
        c = 3 if name == "pesg" else 1
        gen = torch.Generator().manual_seed(21)
        xs = torch.randn(steps, 16, 6, generator=gen)
        ys = (torch.rand(steps, 16, c, generator=gen) < 0.4).float()
        ys[:, 0], ys[:, 1] = 1, 0
        torch.manual_seed(0)
        model_a, model_b = torch.nn.Linear(6, c), torch.nn.Linear(6, c)
        model_b.load_state_dict(model_a.state_dict())
        spec = "aucm" if name == "pesg" else "compauc"
        ours = losses.create_loss(spec, stats={"num_classes": c})
        groups = [{"params": list(model_a.parameters()), "weight_decay": 0.0},
                  {"params": [ours.a, ours.b], "weight_decay": 0.0}]  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "pesg":
                opt_a = losses.PESG(groups, lr=0.1, momentum=0.9, dual_losses=[ours])
                peer = ll.MultiLabelAUCMLoss(margin=1.0, num_labels=c, device="cpu")
                opt_b = lo.PESG(model_b.parameters(), loss_fn=peer, lr=0.1, momentum=0.9,
                                weight_decay=0.0, device="cpu", verbose=False)  # fmt: skip
            else:
                opt_a = losses.PDSCA(groups, lr=0.1, beta1=0.9, beta2=0.9, dual_losses=[ours])
                peer = ll.CompositionalAUCLoss(margin=1.0, k=1, device="cpu")
                opt_b = lo.PDSCA(model_b.parameters(), loss_fn=peer, lr=0.1, lr0=0.1, beta1=0.9,
                                 beta2=0.9, weight_decay=0.0, device="cpu", verbose=False)  # fmt: skip
        with torch.no_grad():
            for ref, p in zip(opt_b.model_ref, opt_b.params, strict=True):
                ref.copy_(p)
        worst = 0.0
        for t in range(steps):
            if name == "pesg" and t == steps // 2:
                opt_a.on_lr_decay()
                opt_b.update_regularizer()
            ours.on_step_start(t)
            for model, opt, side in ((model_a, opt_a, "ours"), (model_b, opt_b, "peer")):
                opt.zero_grad(set_to_none=True)
                peer.alpha.grad = None
                out = model(xs[t])
                value = ours(out, ys[t]) if side == "ours" else peer(torch.sigmoid(out), ys[t])
                value.backward()
                opt.step()
            pairs = list(zip(model_a.parameters(), model_b.parameters(), strict=True))
            pairs += [(ours.a, peer.a), (ours.b, peer.b), (ours.alpha, peer.alpha)]
            worst = max(worst, max(float((p.detach().reshape(-1) - q.detach().reshape(-1))
                                         .abs().max()) for p, q in pairs))  # fmt: skip
        rows.append((f"{name.upper()} ({steps} steps) vs libauc-{libauc.__version__}", f"{worst:.2e}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    from tabulate import tabulate

    dtype = getattr(torch, args.dtype)
    rows = agreement(dtype, args.batches)
    print(f"B={B}, C={C}, {args.dtype}, {args.batches} batches")
    print(tabulate(rows, headers=["loss vs peer", "max |Δ value|", "max |Δ grad|"]))
    print()
    print(tabulate(optimizer_agreement(), headers=["optimizer vs peer", "max |Δ parameter|"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
