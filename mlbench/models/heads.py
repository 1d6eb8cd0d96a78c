"""Classification heads on a backbone's spatial feature map, and their registry.

Every head is an ``nn.Module`` built as ``cls(in_channels, num_classes, **kwargs)`` and maps
a feature map ``(B, F, H, W)`` to logits ``(B, num_classes)``. The registry is the one source
of head names for suites, the CLI and the leaderboard.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BilinearHead",
    "CompactBilinearHead",
    "HeadInfo",
    "LinearHead",
    "create_head",
    "get_head_info",
    "list_heads",
    "register_head",
    "signed_sqrt",
]

@dataclass(frozen=True)
class HeadInfo:
    """What the registry knows about one head.

    Attributes:
        name: registered name (used in suites, the CLI and the leaderboard).
        cls: the ``nn.Module`` class; ``cls(in_channels, num_classes, **kwargs)`` builds it.
        options: the keyword arguments the head takes besides in_channels and num_classes.
    """

    name: str
    cls: type[nn.Module]
    options: tuple[str, ...]


_REGISTRY: dict[str, HeadInfo] = {}


def register_head(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers an ``nn.Module`` head under ``name``.

    Raises:
        ValueError: a name that is not a lowercase identifier, a class that is not an
            ``nn.Module``, or a name already registered by another class.
    """
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"Expected head name to be a lowercase identifier but got {name!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(
                f"Expected register_head({name!r}) to decorate an nn.Module class but got {cls!r}"
            )
        old = _REGISTRY.get(name)
        held = None if old is None else f"{old.cls.__module__}.{old.cls.__qualname__}"
        if held not in (None, f"{cls.__module__}.{cls.__qualname__}"):  # a reload is no clash
            raise ValueError(f"Head name {name!r} is already registered by {held}")
        params = inspect.signature(cls.__init__).parameters
        options = tuple(p for p in params if p not in ("self", "in_channels", "num_classes"))
        _REGISTRY[name] = HeadInfo(name=name, cls=cls, options=options)
        return cls

    return decorator


def list_heads() -> list[str]:
    """The registered head names, sorted."""
    return sorted(_REGISTRY)


def get_head_info(name: str) -> HeadInfo:
    """The :class:`HeadInfo` of a registered head; ``ValueError`` listing the names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Expected head name to be one of {list_heads()} but got {name!r}") from None


def create_head(name: str, in_channels: int, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered head.

    Args:
        name: a name from :func:`list_heads`.
        in_channels: channels F of the feature map the head receives.
        num_classes: number of logits C.
        **kwargs: head options; ``None`` values are dropped so that CLI/YAML defaults never
            override the head's own.

    Raises:
        ValueError: unknown name (lists the valid ones) or unknown option (lists the head's).
    """
    info = get_head_info(name)
    bad = sorted(set(kwargs) - set(info.options))
    if bad:
        raise ValueError(f"Unknown option(s) {bad} for head {name!r}; allowed: {list(info.options)}")
    return info.cls(in_channels, num_classes, **{k: v for k, v in kwargs.items() if v is not None})


def signed_sqrt(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """sign(x) * (sqrt(|x| + eps) - sqrt(eps)): odd, continuous, gradient finite at 0 (1/(2 sqrt(eps)))."""
    return torch.sign(x) * (torch.sqrt(x.abs() + eps) - math.sqrt(eps))


def _reduction(in_channels: int, dim: int | None, bn_relu: bool) -> tuple[nn.Module, int]:
    """Optional 1x1 conv reduction F -> dim (with BN + ReLU). Returns (module, out channels)."""
    if dim is None:
        return nn.Identity(), in_channels
    layers: list[nn.Module] = [nn.Conv2d(in_channels, dim, 1, bias=not bn_relu)]
    if bn_relu:
        layers += [nn.BatchNorm2d(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers), dim


class _PooledHead(nn.Module):
    """Shared tail: (B, D) pooled features -> optional dropout -> FC."""

    def __init__(self, features: int, num_classes: int, dropout: float):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Expected argument `dropout` in [0, 1) but got {dropout}")
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(features, num_classes)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(z))


@register_head("linear")
class LinearHead(_PooledHead):
    """Global average pool -> dropout (optional) -> FC."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__(in_channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x.mean(dim=(2, 3)))  # (B, F)


class _SecondOrderHead(_PooledHead):
    """1x1 reduction, a second-order pooling (subclass), signed sqrt, L2 normalisation, FC.

    The pooling runs in fp32 outside autocast: products of activations overflow fp16.
    """

    def __init__(self, in_channels, num_classes, *, dim, bn_relu, pooled_dim, dropout, eps):
        super().__init__(pooled_dim, num_classes, dropout)
        self.reduce, self.channels = _reduction(in_channels, dim, bn_relu)
        self.eps = eps

    def pool(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, H, W) fp32 -> (B, pooled_dim)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.pool(x.float())
            z = F.normalize(signed_sqrt(z, self.eps), dim=1)
        return self.classify(z.to(self.fc.weight.dtype))


@register_head("bilinear")
class BilinearHead(_SecondOrderHead):
    """B-CNN head (Lin et al. 2015) as in SPEC section 4.

    1x1 conv F -> d (BN + ReLU optional), outer product of the map with itself averaged over
    the H*W positions, flattened (d*d), signed square root, L2 normalisation, FC.

    Args:
        dim: d, channels after the 1x1 reduction; ``None`` keeps F (beware d*d features).
        bn_relu: BatchNorm + ReLU after the reduction.
        dropout: dropout before the FC.
        eps: signed-sqrt epsilon.
    """

    def __init__(self, in_channels: int, num_classes: int, dim: int | None = 256,
                 bn_relu: bool = True, dropout: float = 0.0, eps: float = 1e-8):
        d = in_channels if dim is None else dim
        super().__init__(in_channels, num_classes, dim=dim, bn_relu=bn_relu,
                         pooled_dim=d * d, dropout=dropout, eps=eps)

    def pool(self, x):
        b, d, h, w = x.shape
        x = x.reshape(b, d, h * w)  # (B, d, HW)
        return torch.bmm(x, x.transpose(1, 2)).div_(h * w).reshape(b, d * d)


@register_head("compact_bilinear")
class CompactBilinearHead(_SecondOrderHead):
    """Compact bilinear pooling by Tensor Sketch (Gao et al. 2016).

    Two count sketches with fixed random hashes h_k: [F] -> [D] and signs s_k in {+-1}
    (seeded; registered buffers, saved with the weights), combined by circular convolution in
    the FFT domain per position, pooled over positions, then signed sqrt, L2, FC.
    <TS(x), TS(y)> is an unbiased estimate of <x, y>^2, the bilinear kernel.
    Positions are averaged rather than summed: after signed sqrt and L2 normalisation the
    result is the same up to eps.

    Args:
        dim: sketch / output dimension D.
        reduce_dim: optional 1x1 conv reduction before sketching (``None``: none).
        bn_relu: BatchNorm + ReLU after the reduction (if any).
        seed: seed of the hash functions.
        dropout: dropout before the FC.
        eps: signed-sqrt epsilon.
    """

    def __init__(self, in_channels: int, num_classes: int, dim: int = 8192,
                 reduce_dim: int | None = None, bn_relu: bool = True, seed: int = 0,
                 dropout: float = 0.0, eps: float = 1e-8):
        super().__init__(in_channels, num_classes, dim=reduce_dim, bn_relu=bn_relu,
                         pooled_dim=dim, dropout=dropout, eps=eps)
        if dim < 2:
            raise ValueError(f"Expected argument `dim` >= 2 but got {dim}")
        self.dim = dim
        g = torch.Generator().manual_seed(seed)  # local generator: global RNG untouched
        c = self.channels
        for k in (1, 2):
            self.register_buffer(f"h{k}", torch.randint(0, dim, (c,), generator=g))
            self.register_buffer(f"s{k}", torch.randint(0, 2, (c,), generator=g).float() * 2 - 1)

    def _sketch_matrix(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # dense (F, D) count-sketch matrix; a matmul is deterministic on every device
        m = torch.zeros(h.shape[0], self.dim, device=h.device)
        return m.index_put_((torch.arange(h.shape[0], device=h.device), h), s)

    def pool(self, x):
        b, c, hh, ww = x.shape
        x = x.reshape(b, c, hh * ww).transpose(1, 2)  # (B, HW, F)
        f1 = torch.fft.rfft(x @ self._sketch_matrix(self.h1, self.s1), dim=-1)  # (B, HW, D/2+1)
        f2 = torch.fft.rfft(x @ self._sketch_matrix(self.h2, self.s2), dim=-1)
        return torch.fft.irfft((f1 * f2).mean(dim=1), n=self.dim, dim=-1)  # (B, D)
