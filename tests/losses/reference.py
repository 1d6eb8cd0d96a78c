"""Independent float64 references of the SPEC §1 formulas, written from the SPEC with plain
Python loops and ``math`` (no torch, nothing from ``losses``).

Each reference takes a logits row list ``z`` (B×C floats) and a target list ``y`` (B×C ints)
and returns the per-sample losses (a list of B floats), or, for batch-coupled losses without a
per-sample value, a float (the "mean" reduction). Good for moderate logits (|z| ≲ 30).

``REFERENCES`` maps each registered loss to its reference; ``EXTRA_KWARGS`` lists, per loss,
non-default keyword arguments it is also checked with (``test_reference.py`` reads both).
"""

from __future__ import annotations

import math


def _sig(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def _softplus(t: float) -> float:
    return math.log1p(math.exp(t)) if t < 30 else t + math.log1p(math.exp(-t))


def _lse(values: list[float]) -> float:
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _split(zr, yr):
    pos = [z for z, t in zip(zr, yr, strict=True) if t == 1]
    neg = [z for z, t in zip(zr, yr, strict=True) if t == 0]
    return pos, neg


def bce(z, y):
    return [
        sum(_softplus(a) - t * a for a, t in zip(zr, yr, strict=True)) / len(zr)
        for zr, yr in zip(z, y, strict=True)
    ]


def wbce(z, y):
    n_pos = sum(sum(yr) for yr in y)
    total = sum(len(yr) for yr in y)
    n_neg = total - n_pos
    beta_p = total / n_pos if n_pos else 0.0
    beta_n = total / n_neg if n_neg else 0.0
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            s += beta_p * t * _softplus(-a) + beta_n * (1 - t) * _softplus(a)
        out.append(s / len(zr))
    return out


def focal(z, y, alpha=0.25, gamma=2.0):
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            p_t = _sig(a) if t == 1 else 1 - _sig(a)
            a_t = 1.0 if alpha < 0 else (alpha if t == 1 else 1 - alpha)
            s += -a_t * (1 - p_t) ** gamma * math.log(p_t)
        out.append(s / len(zr))
    return out


def asl(z, y, gamma_neg=4.0, gamma_pos=1.0, clip=0.05, eps=1e-8):
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            p = _sig(a)
            pm = max(p - clip, 0.0)
            if t == 1:
                s += -((1 - p) ** gamma_pos) * math.log(max(p, eps))
            else:
                s += -(pm**gamma_neg) * math.log(max(1 - pm, eps))
        out.append(s / len(zr))
    return out


def cb(z, y, class_counts, beta=0.999):
    w = [(1 - beta) / (1 - beta**n) for n in class_counts]
    w = [v * len(w) / sum(w) for v in w]
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = sum(wc * (_softplus(a) - t * a) for wc, a, t in zip(w, zr, yr, strict=True))
        out.append(s / len(zr))
    return out


def msml(z, y):
    """Pairwise form: (1/|P|) Σ_p log(1 + Σ_n e^{z_n − z_p})."""
    out = []
    for zr, yr in zip(z, y, strict=True):
        pos, neg = _split(zr, yr)
        if not pos:
            out.append(0.0)
            continue
        terms = [math.log(1 + sum(math.exp(n - p) for n in neg)) for p in pos]
        out.append(sum(terms) / len(pos))
    return out


def lsep(z, y):
    out = []
    for zr, yr in zip(z, y, strict=True):
        pos, neg = _split(zr, yr)
        out.append(math.log(1 + sum(math.exp(n - p) for p in pos for n in neg)))
    return out


def bpmll(z, y):
    out = []
    for zr, yr in zip(z, y, strict=True):
        pos, neg = _split(zr, yr)
        if not pos or not neg:
            out.append(0.0)
            continue
        out.append(sum(math.exp(-(p - n)) for p in pos for n in neg) / (len(pos) * len(neg)))
    return out


def zlpr(z, y):
    out = []
    for zr, yr in zip(z, y, strict=True):
        pos, neg = _split(zr, yr)
        out.append(
            math.log(1 + sum(math.exp(n) for n in neg))
            + math.log(1 + sum(math.exp(-p) for p in pos))
        )
    return out


def _twoway_term(pos, neg, t_pos, t_neg):
    return _softplus(
        t_neg * _lse([n / t_neg for n in neg]) + t_pos * _lse([-p / t_pos for p in pos])
    )


def twoway(z, y, t_pos=4.0, t_neg=1.0):
    """Batch-coupled: returns the scalar "mean" value."""
    rows = [_split(zr, yr) for zr, yr in zip(z, y, strict=True)]
    sample = [_twoway_term(p, n, t_pos, t_neg) if n else 0.0 for p, n in rows if p]
    cols = [_split([zr[c] for zr in z], [yr[c] for yr in y]) for c in range(len(z[0]))]
    klass = [_twoway_term(p, n, t_pos, t_neg) if n else 0.0 for p, n in cols if p]
    return (sum(sample) / len(sample) if sample else 0.0) + (
        sum(klass) / len(klass) if klass else 0.0
    )


def hill(z, y, lamb=1.5, margin=1.0, gamma=2.0):
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            if t == 1:
                pm = _sig(a - margin)
                s += -((1 - pm) ** gamma) * math.log(pm)
            else:
                p = _sig(a)
                s += (lamb - p) * p * p
        out.append(s / len(zr))
    return out


def sce(z, y):
    out = []
    for zr, yr in zip(z, y, strict=True):
        k = sum(yr)
        if not k:
            out.append(0.0)
            continue
        lse = _lse(list(zr))
        out.append(-sum(t / k * (a - lse) for a, t in zip(zr, yr, strict=True)))
    return out


REFERENCES = {
    "asl": asl,
    "bce": bce,
    "bpmll": bpmll,
    "cb": cb,
    "focal": focal,
    "hill": hill,
    "lsep": lsep,
    "msml": msml,
    "sce": sce,
    "twoway": twoway,
    "wbce": wbce,
    "zlpr": zlpr,
}

# Non-default hyper-parameters checked against the references as well (each dict is one case);
# a loss with hyper-parameters should list the corners of their ranges here.
EXTRA_KWARGS = {
    "asl": [
        {"gamma_neg": 2.0, "gamma_pos": 0.0, "clip": 0.0},
        {"gamma_neg": 1.0, "gamma_pos": 2.0, "clip": 0.2},
        {"gamma_neg": 0.5, "gamma_pos": 0.5, "clip": 0.05, "detach_focal": True},
    ],
    "focal": [{"alpha": -1.0, "gamma": 0.5}, {"alpha": 0.7, "gamma": 0.0}],
    "cb": [{"beta": 0.9}, {"beta": 0.0}],
    "hill": [{"lamb": 1.0, "margin": 0.5, "gamma": 1.0}],
    "twoway": [{"t_pos": 2.0, "t_neg": 0.5}],
}
