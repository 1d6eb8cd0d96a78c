"""Independent float64 references of the SPEC §1 formulas, written from the SPEC with plain
Python loops and ``math`` (no torch, nothing from ``losses``).

Each reference takes a logits row list ``z`` (B×C floats) and a target list ``y`` (B×C ints)
and returns the per-sample losses (a list of B floats), or, for batch-coupled losses without a
per-sample value, a float (the "mean" reduction). Good for moderate logits (|z| ≲ 30). A loss
with state takes its state as keyword arguments (lists; default: the initial state, zeros),
and its hook position (``epoch``, ``step``) likewise. The formulas are the papers' (AUC-M:
Yuan et al. 2021; compositional AUC: Yuan et al. 2022; DB: Wu et al. 2020 as configured in
the official code; Poly-1: Leng et al. 2022; SPLC: Zhang et al. 2021).

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


def softmax(z, y):
    out = []
    for zr, yr in zip(z, y, strict=True):
        k = sum(yr)
        if not k:
            out.append(0.0)
            continue
        lse = _lse(list(zr))
        out.append(-sum(t / k * (a - lse) for a, t in zip(zr, yr, strict=True)))
    return out


def _auc_state(value, c):
    return [0.0] * c if value is None else list(value)


def _aucm_class(h, t, a, b, alpha, margin, version, p_given):
    """AUC-M of one class: scores h, labels t (lists over the batch)."""
    n = len(h)
    n_pos = sum(t)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.0
    if version == "v1":  # Yuan et al. 2021: expectations over all samples, p the positive ratio
        p = n_pos / n if p_given is None else p_given
        e_pos = sum((hi - a) ** 2 for hi, ti in zip(h, t, strict=True) if ti) / n
        e_neg = sum((hi - b) ** 2 for hi, ti in zip(h, t, strict=True) if not ti) / n
        cross = sum(p * hi if not ti else -(1 - p) * hi for hi, ti in zip(h, t, strict=True)) / n
        return (
            (1 - p) * e_pos
            + p * e_neg
            + 2 * alpha * (p * (1 - p) * margin + cross)
            - p * (1 - p) * alpha**2
        )
    pos = [hi for hi, ti in zip(h, t, strict=True) if ti]
    neg = [hi for hi, ti in zip(h, t, strict=True) if not ti]
    mean_pos, mean_neg = sum(pos) / len(pos), sum(neg) / len(neg)
    return (
        sum((hi - a) ** 2 for hi in pos) / len(pos)
        + sum((hi - b) ** 2 for hi in neg) / len(neg)
        + 2 * alpha * (margin + mean_neg - mean_pos)
        - alpha**2
    )


def aucm(z, y, a=None, b=None, alpha=None, margin=1.0, version="v1", imratio=None):
    """Batch-coupled: the class mean of AUC-M on σ(z) (returns the "mean" value)."""
    c = len(z[0])
    a, b, alpha = _auc_state(a, c), _auc_state(b, c), _auc_state(alpha, c)
    total = 0.0
    for k in range(c):
        h = [_sig(zr[k]) for zr in z]
        t = [yr[k] for yr in y]
        p = None if imratio is None else imratio[k]
        total += _aucm_class(h, t, a[k], b[k], alpha[k], margin, version, p)
    return total / c


def compauc(z, y, a=None, b=None, alpha=None, step=0, k=1, margin=1.0, version="v1", imratio=None):
    """k BCE steps, then k AUC-M steps (Yuan et al. 2022); the "mean" value of step ``step``."""
    if (step // k) % 2 == 0:
        per_sample = bce(z, y)
        return sum(per_sample) / len(per_sample)
    return aucm(z, y, a, b, alpha, margin, version, imratio)


def pairwise_auc(z, y, margin=1.0):
    """Batch-coupled: the class mean of the mean over (positive, negative) pairs of
    max(0, m − (σ(z_p) − σ(z_n)))²."""
    c = len(z[0])
    total = 0.0
    for k in range(c):
        pos = [_sig(zr[k]) for zr, yr in zip(z, y, strict=True) if yr[k]]
        neg = [_sig(zr[k]) for zr, yr in zip(z, y, strict=True) if not yr[k]]
        if pos and neg:
            pairs = [max(0.0, margin - (hp - hn)) ** 2 for hp in pos for hn in neg]
            total += sum(pairs) / len(pairs)
    return total / c


def db(
    z,
    y,
    class_counts,
    num_samples,
    map_alpha=0.1,
    map_beta=10.0,
    map_mu=0.2,
    neg_scale=2.0,
    init_bias=0.05,
    focal_gamma=2.0,
    focal_balance=2.0,
):
    """Wu et al. 2020: re-balanced weights r̂ = α + σ(β(r − μ)), r = (1/n_c)/Σ_{j∈P}(1/n_j);
    logits shifted by κ·log(p/(1−p))/λ; positives softplus(−x), negatives softplus(λx)/λ, each
    times s·(1 − p_t)^γ."""
    n = [min(max(float(v), 1.0), num_samples - 1.0) for v in class_counts]
    bias = [-math.log(num_samples / v - 1.0) * init_bias / neg_scale for v in n]
    out = []
    for zr, yr in zip(z, y, strict=True):
        repeat = sum(1.0 / v for v, t in zip(n, yr, strict=True) if t)
        s = 0.0
        for a, t, v, nu in zip(zr, yr, n, bias, strict=True):
            r = (1.0 / v) / repeat if repeat > 0 else math.inf
            w = map_alpha + (1.0 if r == math.inf else _sig(map_beta * (r - map_mu)))
            x = a + nu
            if t:
                term = _softplus(-x) * (
                    _sig(-x) ** focal_gamma * focal_balance if focal_gamma > 0 else 1
                )
            else:
                term = _softplus(neg_scale * x) / neg_scale
                if focal_gamma > 0:
                    term *= _sig(neg_scale * x) ** focal_gamma * focal_balance
            s += w * term
        out.append(s / len(zr))
    return out


def poly(z, y, epsilon=2.0, gamma=0.0, alpha=None):
    """Leng et al. 2022, Poly-1: (1 − p_t)^γ·BCE + ε(1 − p_t)^{γ+1}, α-weighted if given."""
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            p_t = _sig(a) if t else 1 - _sig(a)
            term = -math.log(p_t) * (1 - p_t) ** gamma + epsilon * (1 - p_t) ** (gamma + 1)
            if alpha is not None:
                term *= alpha if t else 1 - alpha
            s += term
        out.append(s / len(zr))
    return out


def splc(z, y, epoch=0, tau=0.6, change_epoch=1, margin=1.0, gamma=2.0):
    """Zhang et al. 2021: focal margin on positives; from ``change_epoch`` on, a negative with
    σ(z) > τ counts as a positive (no margin: it was not labelled)."""
    out = []
    for zr, yr in zip(z, y, strict=True):
        s = 0.0
        for a, t in zip(zr, yr, strict=True):
            x = a - margin if t else a
            if not t and epoch >= change_epoch and _sig(x) > tau:
                t = 1
            p = _sig(x)
            s += -((1 - p) ** gamma) * math.log(p) if t else -(p**gamma) * math.log(1 - p)
        out.append(s / len(zr))
    return out


REFERENCES = {
    "asl": asl,
    "aucm": aucm,
    "bce": bce,
    "bpmll": bpmll,
    "cb": cb,
    "compauc": compauc,
    "db": db,
    "focal": focal,
    "hill": hill,
    "lsep": lsep,
    "msml": msml,
    "pairwise_auc": pairwise_auc,
    "poly": poly,
    "softmax": softmax,
    "splc": splc,
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
    # the stateful losses with a non-zero state (C = 5 in the test) and other hook positions
    "aucm": [
        {
            "a": [0.6, 0.7, 0.8, 0.5, 0.9],
            "b": [0.1, 0.3, 0.2, 0.4, 0.0],
            "alpha": [0.2, 0.0, 1.5, 0.7, 0.3],
        },
        {
            "a": [0.6, 0.7, 0.8, 0.5, 0.9],
            "b": [0.1, 0.3, 0.2, 0.4, 0.0],
            "alpha": [0.2, 0.0, 1.5, 0.7, 0.3],
            "margin": 0.5,
            "version": "v2",
        },
        {"alpha": [0.5] * 5, "margin": 0.1, "imratio": [0.1, 0.5, 0.3, 0.9, 0.05]},
        {"alpha": [0.5] * 5, "margin": 0.0, "version": "v2"},
    ],
    "compauc": [
        {"step": 1, "alpha": [0.5] * 5, "a": [0.7] * 5},
        {"step": 3, "k": 2, "alpha": [0.5] * 5, "margin": 0.6, "version": "v2"},
        {"step": 2, "k": 2},
    ],
    "pairwise_auc": [{"margin": 0.5}, {"margin": 0.0}, {"margin": 2.0}],
    "db": [
        {"map_alpha": 0.5, "map_beta": 3.0, "map_mu": 0.5, "neg_scale": 1.0, "init_bias": 0.0},
        {"focal_gamma": 0.0, "neg_scale": 5.0, "init_bias": 0.1},
        {"focal_gamma": 1.0, "focal_balance": 1.0},
    ],
    "poly": [
        {"epsilon": 1.0},
        {"epsilon": -1.0, "gamma": 2.0, "alpha": 0.25},
        {"epsilon": 0.0, "gamma": 0.5},
    ],
    "splc": [
        {"epoch": 1},
        {"epoch": 2, "tau": 0.3, "change_epoch": 2, "margin": 0.5, "gamma": 1.0},
        {"epoch": 5, "tau": 1.0},
    ],
}
