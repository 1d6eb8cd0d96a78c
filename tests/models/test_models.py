"""build_model and the head registry, tested over every registered head on two backbones."""

import dataclasses
import math

import pytest
import timm
import torch

from mlbench.models import (
    BilinearHead,
    CompactBilinearHead,
    build_model,
    create_head,
    get_head_info,
    list_heads,
    register_head,
    signed_sqrt,
)
from mlbench.models import build as build_mod

SMALL = {"linear": {}, "bilinear": {"dim": 32}, "compact_bilinear": {"dim": 256}}
BACKBONES = ["resnet10t", "test_vit"]  # CNN feature map and ViT tokens


def test_registry_lists_the_required_heads():
    assert {"linear", "bilinear", "compact_bilinear"} <= set(list_heads())
    assert set(SMALL) == set(list_heads()), "add small kwargs for the new head to SMALL"


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", list_heads())
def test_head_shapes_and_gradients(backbone, head):
    torch.manual_seed(0)
    model = build_model(backbone, head, num_classes=5, head_kwargs=SMALL[head])
    x = torch.randn(3, 1, 64, 64)
    out = model(x)
    assert out.shape == (3, 5) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.square().sum().backward()
    first = next(p for p in model.backbone.parameters() if p.requires_grad)
    for p in (first, model.head.fc.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("head", list_heads())
def test_heads_accept_any_feature_map(head):
    h = create_head(head, 24, 4, **SMALL[head])
    for shape in [(2, 24, 7, 5), (1, 24, 1, 1)]:
        assert h.eval()(torch.randn(shape)).shape == (shape[0], 4)


def test_in_chans_one_and_replication():
    torch.manual_seed(0)
    one = build_model("resnet10t", "linear", in_chans=1)
    three = build_model("resnet10t", "linear", in_chans=3)
    assert one.backbone.conv1[0].in_channels == 1 and three.backbone.conv1[0].in_channels == 3
    assert three.replicate and not one.replicate
    x = torch.randn(2, 1, 32, 32)
    three.eval()
    ref = three.head(three.backbone.forward_features(x.repeat(1, 3, 1, 1)))
    torch.testing.assert_close(three(x), ref)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        one(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="in_chans"):
        build_model("resnet10t", "linear", in_chans=2)


def test_backbone_kwargs_reach_timm():
    vit = build_model("test_vit3", "linear", num_classes=2, backbone_kwargs={"img_size": 64})
    assert vit(torch.randn(1, 1, 64, 64)).shape == (1, 2)
    with pytest.raises(ValueError, match=r"may not set \['in_chans'\]"):
        build_model("test_vit3", "linear", backbone_kwargs={"in_chans": 3})


def test_norm_stats_are_grayscale_averages():
    m = build_model("resnet10t", "linear")
    assert m.norm_mean == pytest.approx((0.485 + 0.456 + 0.406) / 3)
    assert m.norm_std == pytest.approx((0.229 + 0.224 + 0.225) / 3)
    assert m.config["backbone"] == "resnet10t" and m.num_classes == 14


def test_unknown_names_and_options():
    with pytest.raises(ValueError, match=r"one of \['bilinear', 'compact_bilinear', 'linear'"):
        build_model("resnet10t", "bilnear")
    with pytest.raises(ValueError, match=r"close matches: \[.*'resnet18'"):
        build_model("resnet81", "linear")
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['dimm'\] for head 'bilinear'"):
        build_model("resnet10t", "bilinear", head_kwargs={"dimm": 3})
    with pytest.raises(ValueError, match="already registered"):
        register_head("linear")(BilinearHead)


def test_head_registry_has_the_loss_registrys_shape():
    info = get_head_info("bilinear")
    assert info.name == "bilinear" and info.cls is BilinearHead and "dim" in info.options
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "other"
    with pytest.raises(ValueError, match=r"head name to be one of \['bilinear', "):
        get_head_info("bilnear")
    with pytest.raises(ValueError, match="lowercase identifier"):
        register_head("Bad Name")
    with pytest.raises(ValueError, match="nn.Module class"):
        register_head("not_a_module")(int)


def test_offline_pretrained_error_suggests_fixes(monkeypatch):
    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return timm.create_model(name, **kw)

    monkeypatch.setattr(build_mod.timm, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"pretrained: false.*local weights file"):
        build_model("resnet10t", "linear", pretrained=True)


def test_local_backbone_weights_adapt_to_grayscale(tmp_path):
    src = timm.create_model("resnet10t", pretrained=False)  # 3 channels + classifier, like a hub file
    torch.save(src.state_dict(), tmp_path / "rn.pth")
    m = build_model("resnet10t", "linear", in_chans=1, weights=tmp_path / "rn.pth")
    w3 = src.conv1[0].weight
    torch.testing.assert_close(m.backbone.conv1[0].weight, w3.sum(dim=1, keepdim=True))
    torch.testing.assert_close(m.backbone.layer4[0].conv1.weight, src.layer4[0].conv1.weight)
    with pytest.raises(FileNotFoundError):
        build_model("resnet10t", "linear", weights=tmp_path / "missing.pth")


def test_signed_sqrt_is_odd_continuous_with_finite_gradient():
    x = torch.tensor([-4.0, -1e-12, 0.0, 1e-12, 4.0], requires_grad=True)
    y = signed_sqrt(x)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and y[2] == 0
    torch.testing.assert_close(y[[0, 4]], torch.tensor([-2.0, 2.0]), atol=1e-3, rtol=0)
    assert abs(y[1]) < 1e-6


def test_bilinear_pool_is_mean_outer_product():
    h = BilinearHead(6, 2, dim=None)
    x = torch.randn(2, 6, 3, 4)
    ref = torch.einsum("bihw,bjhw->bij", x, x) / 12
    torch.testing.assert_close(h.pool(x), ref.reshape(2, 36))


def test_compact_bilinear_is_tensor_sketch():
    # exact definition: TS(x)[k] = sum_{i,j: h1[i]+h2[j] = k mod D} s1[i] s2[j] x_i x_j, mean over positions
    h = CompactBilinearHead(5, 2, dim=7, seed=3)
    x = torch.randn(2, 5, 2, 3, dtype=torch.float32)
    ref = torch.zeros(2, 7)
    for i in range(5):
        for j in range(5):
            k = int(h.h1[i] + h.h2[j]) % 7
            ref[:, k] += h.s1[i] * h.s2[j] * (x[:, i] * x[:, j]).mean(dim=(1, 2))
    torch.testing.assert_close(h.pool(x), ref, atol=1e-5, rtol=1e-5)


def test_compact_bilinear_approximates_bilinear_kernel():
    # <TS(x), TS(y)> is an unbiased estimate of <x, y>^2 (Pham & Pagh 2013; Gao et al. 2016)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 1, 1, generator=g)
    y = x + 0.5 * torch.randn(1, 64, 1, 1, generator=g)
    est = [(h.pool(x) * h.pool(y)).sum() for h in
           (CompactBilinearHead(64, 2, dim=8192, seed=s) for s in range(10))]
    exact = ((x * y).sum()) ** 2
    assert torch.stack(est).mean().item() == pytest.approx(exact.item(), rel=0.1)
    a, b = CompactBilinearHead(32, 2, seed=1), CompactBilinearHead(32, 2, seed=1)
    assert torch.equal(a.h1, b.h1) and not torch.equal(a.h1, a.h2)
    assert {"h1", "h2", "s1", "s2"} <= set(a.state_dict())


@pytest.mark.parametrize("head", ["bilinear", "compact_bilinear"])
def test_second_order_heads_under_autocast(head):
    h = create_head(head, 16, 3, **SMALL[head])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = h(torch.randn(2, 16, 4, 4) * 100)
    assert torch.isfinite(out).all() and not math.isnan(out.float().sum().item())
