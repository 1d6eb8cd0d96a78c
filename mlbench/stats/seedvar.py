"""The seed term of the leaderboard's tests, the test-set term's uncertainty and the test
(SPEC §5.1, issue 30). Everything is vectorised over leading axes: the leaderboard calls it on
one setup, ``mlbench calibrate`` on thousands of simulated ones, so both run the same code.

**Seed term (the leaderboard's).** A comparison c (loss vs the reference, S_c seeds paired by
seed) uses its own seed variance s_c^2 of the paired differences Delta_s, on d_c = S_c - 1 df;
one loss's mean-AUC CI its own variance over seeds. Nothing is pooled between comparisons: it
is right whether or not the losses are equally stable, and ``paired_comparison`` (two losses)
is the same computation as a leaderboard row. Chosen by simulation (docs/HARNESS.md, fourth
round): every moderation of the seed term tried (:func:`moderate`, the first issue-30 rule,
and its gates) either let a 3x unstable loss be called significant above 7.5% with 3-5 seeds
or bought at most 1-2 points of power.

**Moderated seed term** (:func:`moderate`, kept for the leaderboard's unstable marker, whose
outlier p it computes, and for ``mlbench calibrate``'s alternative rules): the own variance
moderated (empirical Bayes, Smyth 2004) only as far as the other comparisons of the setup can
vouch for it::

    prior (d0, s0^2)  Smyth's moment estimates from the OTHER comparisons' variances
                      (leave-one-out: an unstable loss does not dilute its own prior)
    p_c               upper-tail p of s_c^2 / s0^2 under F(d_c, d0): how plausible this
                      comparison's seed spread is under the others'
    d0_c              d0 * min(1, p_c / OUTLIER_ALPHA), at most the others' total df and
                      MAX_PRIOR_RATIO x d_c; 0 (own variance) when S_c < MIN_POOL_SEEDS
    s~_c^2            (d0_c s0^2 + d_c s_c^2) / (d0_c + d_c),  on d0_c + d_c df

The prior is fitted twice: the first pass gives every unit its outlier p, the second leaves
units with p < EXCLUDE_P out of the others' priors (one unstable loss should not widen
everyone's prior). Why it is not the leaderboard's: with few seeds an unstable loss cannot be
told from a stable one (with 2 seeds its seed variance rests on one difference, independent
of its mean), and any weight on the others' spread then makes its false-positive rate grow
with its instability (full pooling as before issue 30: up to 48% on the official split;
Smyth's prior at full weight, ``simulate.RULES["smyth"]``: 10-20%; the guarded moderation
here, ``simulate.RULES["moderated-bf"]``: up to 8.5% with 3-5 seeds, and with t in place of
Behrens-Fisher, ``moderated-t``, 8.8%).

**Test term.** v_t = mean over seed pairs s != s' of sum_g Psi_sg Psi_s'g (patient sums of
the class-averaged DeLong influence values), floored at 0; it is a sum of independent
per-patient terms T_g, so its own variance is estimated from their spread and it gets
df_t = 2 v_t^2 / Var(v_t).

**p and CI** (:func:`p_value`, :func:`ci_half_width`) count both terms' uncertainty:

* seed term on >= ``BF_BELOW_DF`` df (3 or more seeds): p = max(p_t, ``BF_FLOOR`` x p_BF).
  p_t is Student t of Delta / sqrt(v_s + v_t) on :func:`t_df`, the Satterthwaite df of both
  estimated terms with the seed term at its upper confidence bound v_s d_s / chi2_{d_s, q},
  q = 0.25 (``DF_QUANTILES``); p_BF the Behrens-Fisher p below. Chosen by simulation: plain
  Satterthwaite is anti-conservative (a chance-small s^2 makes the df large); Behrens-Fisher
  alone conservative (1.6% where the two terms are of one size); the t alone holds 5% but
  its tail at 0.05 / 12 is up to twice nominal with 2 seed df, which let Holm's FWER reach
  11% with 13 losses x 3 seeds; the floor keeps Behrens-Fisher's tail where Holm reads it
  and leaves the t near 5%;
* fewer (2 seeds, 1 df): the Behrens-Fisher (fiducial) distribution of Delta / sqrt(v_s +
  v_t), sin(theta) T_{d_s} + cos(theta) T_{df_t}, tan(theta)^2 = v_s / v_t
  (:func:`behrens_fisher`). With one seed df no df rule held the Holm tail (a t on the
  Satterthwaite df rejects 10-16% at high seed share); Behrens-Fisher never exceeds the level
  and is conservative (1-4%): with 2 seeds a test can be valid or powerful, not both.
"""

from __future__ import annotations

import warnings

import numpy as np

MIN_POOL_SEEDS = 3  # fewer matched seeds (2): the comparison's own seed variance only
OUTLIER_ALPHA = 3.0  # prior weight d0 * min(1, p / OUTLIER_ALPHA): p the upper-tail p of s^2
MAX_PRIOR_RATIO = 1.0  # the prior's df at most this many times the comparison's own
EXCLUDE_P = 0.01  # a unit this far out is left out of the others' priors
# the seed term enters the df at its upper confidence bound v d / chi2_{d, q}: ((df below,
# q), ...); one q = 0.25 for every df (the fourth round of docs/HARNESS.md: 0.3 let an
# unstable loss reach 8% on the sim split, 0.22 was conservative below 2.5%)
DF_QUANTILES = ((np.inf, 0.25),)
BF_BELOW_DF = 1.5  # a seed term on fewer df (2 seeds) is tested by Behrens-Fisher, not t
BF_FLOOR = 0.6  # with more: p = max(t's p, BF_FLOOR x Behrens-Fisher's p) (the Holm tail;
# 0 let Holm's FWER reach 11% at 13 losses x 3 seeds, 0.7 was conservative on the sim split)


# --------------------------------------------------------------------------- test term


def test_term(psum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Test-set term of a seed-averaged statistic and its degrees of freedom.

    Args:
        psum: (..., S, G) per-seed, per-patient sums of the class-averaged influence values
            (of a paired difference, or of one loss's runs).

    Returns:
        (v, df), each (...): v the mean over seed pairs s != s' of sum_g Psi_sg Psi_s'g,
        floored at 0 (S = 1: sum_g Psi_1g^2, the whole one-run test variance); df = 2 v^2 /
        Var(v), Var(v) estimated from the spread of the per-patient terms (inf when v = 0)
        over the patients with a non-zero sum (a patient with no labelled image under a
        test set's mask has only zeros and is not counted).
    """
    psum = np.asarray(psum, dtype=np.float64)
    s = psum.shape[-2]
    tot = psum.sum(axis=-2)
    sq = (psum**2).sum(axis=-2)
    t = sq if s == 1 else (tot**2 - sq) / (s * (s - 1))  # (..., G) per-patient terms
    v = t.sum(axis=-1)
    # patients whose every sum is 0 have no labelled image (a test set's mask): not there
    there = (psum != 0).any(axis=-2)
    g = there.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(there, t - (v / np.maximum(g, 1))[..., None], 0.0)
    var_v = g / np.maximum(g - 1, 1) * (dev**2).sum(axis=-1)
    v = np.maximum(v, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where((var_v > 0) & (v > 0), 2 * v**2 / var_v, np.inf)
    return v, df


def satterthwaite(vs, ds, vt, dt) -> np.ndarray:
    """Satterthwaite df of vs + vt, vs and vt estimated on ds and dt df (inf: exact)."""
    vs, ds, vt, dt = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                           for x in (vs, ds, vt, dt)))
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.where(np.isfinite(ds) & (vs > 0), vs**2 / ds, 0.0) \
            + np.where(np.isfinite(dt) & (vt > 0), vt**2 / dt, 0.0)
        return np.where(den > 0, (vs + vt) ** 2 / den, np.inf)


def t_df(vs, ds, vt, dt, quantiles=None) -> np.ndarray:
    """The leaderboard's df of a seed term vs (on ds df) plus a test term vt (on dt df).

    Satterthwaite with the seed term at its upper confidence bound (see the module doc),
    never below ds; no seed term (vs NaN or 0): dt. ``quantiles``: ((df below, q), ...) in
    place of ``DF_QUANTILES`` (for calibration).
    """
    from scipy import stats as _st

    vs, ds, vt, dt = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                           for x in (vs, ds, vt, dt)))
    ok = np.isfinite(vs) & (vs > 0) & (ds > 0)
    vs0 = np.where(ok, vs, 0.0)
    ds0 = np.where(ok, ds, 1.0)
    table = DF_QUANTILES if quantiles is None else quantiles
    q = np.select([ds0 < b for b, _ in table], [x for _, x in table])
    with np.errstate(invalid="ignore"):
        scale = np.where(np.isfinite(ds0), ds0 / _st.chi2.ppf(q, np.minimum(ds0, 1e9)), 1.0)
    df = satterthwaite(vs0 * scale, ds0, vt, dt)
    return np.where(ok, np.maximum(df, ds0), np.where(vt > 0, dt, np.inf))


BF_NODES = 160  # quadrature nodes of the Behrens-Fisher p (trapezoid in logit probability)
BF_SPAN = 30.0  # ... over logit u in [-BF_SPAN, BF_SPAN]
MIN_DF = 1.0  # an estimated variance term counts at least one df


def behrens_fisher(z, vs, ds, vt, dt, nodes: int = BF_NODES) -> np.ndarray:
    """Two-sided p of a statistic z whose variance vs + vt is the sum of two independent
    estimates on ds and dt df (inf: exact), from the Behrens-Fisher (fiducial) distribution
    z / sqrt(vs + vt) ~ sin(theta) T_ds + cos(theta) T_dt, tan(theta)^2 = vs / vt, T
    independent Student t. It counts both terms' uncertainty without a df approximation: with
    the seed term on 1-2 df the Satterthwaite df of the estimated terms is anti-conservative
    (a chance-small seed variance makes the df large), the seed term's own df conservative.

    Computed as E over the term of smaller weight (trapezoid rule in the logit of its
    probability, ``nodes`` nodes) of P(|sin T_ds + cos T_dt| > |t|) under the other;
    vs = 0: Student t on dt, vt = 0: on ds; a df below ``MIN_DF`` counts as ``MIN_DF``.
    Vectorised over broadcast arrays.
    """
    from scipy.special import stdtr, stdtrit

    z, vs, ds, vt, dt = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                              for a in (z, vs, ds, vt, dt)))
    vs = np.where(np.isfinite(vs), np.maximum(vs, 0.0), 0.0)
    vt = np.maximum(np.nan_to_num(vt), 0.0)
    se = np.sqrt(vs + vt)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(z) / se
        s = np.sqrt(vs) / se
    c = np.sqrt(np.maximum(1 - s**2, 0.0))
    big = 1e9
    # an estimated term on fewer than 1 df (the cross-seed product of a term near 0: not
    # chi-square at all) counts as 1 df: below that its fiducial tail would swamp the other
    ds_ = np.where(np.isfinite(ds) & (ds > 0), np.maximum(ds, MIN_DF), big)
    dt_ = np.where(np.isfinite(dt) & (dt > 0), np.maximum(dt, MIN_DF), big)
    # the outer quadrature runs over the term of smaller weight, so that the inner cdf is
    # smooth in it (weight >= 1/sqrt 2)
    swap = s < c
    wi, di = np.where(swap, c, s), np.where(swap, dt_, ds_)  # inner: Student cdf
    wo, do = np.where(swap, s, c), np.where(swap, ds_, dt_)  # outer: quadrature
    # trapezoid rule in x = logit(u), u the outer term's probability (weights u (1 - u) dx):
    # the far tails, where a heavy-tailed outer term carries the small p Holm reads, are kept
    x = np.linspace(-BF_SPAN, BF_SPAN, nodes)
    u = 1 / (1 + np.exp(-x))
    wq = u * (1 - u)
    wq = wq / wq.sum()
    # quantiles of the outer term: one row per distinct df (usually one or two)
    dfs, inv = np.unique(do, return_inverse=True)
    q = stdtrit(dfs[:, None], u[None, :])[inv.reshape(do.shape)]
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = (-t[..., None] - wo[..., None] * q) / wi[..., None]
        hi = (t[..., None] - wo[..., None] * q) / wi[..., None]
        di_ = di[..., None]
        mix = ((stdtr(di_, lo) + stdtr(di_, -hi)) * wq).sum(axis=-1)
    p = np.where(se > 0, mix, np.where(z == 0, 1.0, 0.0))
    return np.minimum(p, 1.0)


def behrens_fisher_ci(vs, ds, vt, dt, alpha: float = 0.05) -> float:
    """Half-width h of the 1 - alpha interval z +- h of :func:`behrens_fisher` (scalars)."""
    from scipy import optimize

    se = float(np.sqrt(max(vs, 0.0) + max(vt, 0.0)))
    if not se > 0:
        return 0.0

    def f(h):
        return float(behrens_fisher(h, vs, ds, vt, dt)) - alpha

    hi = se * 2.0
    while f(hi) > 0 and hi < se * 1e6:
        hi *= 4
    return float(optimize.brentq(f, 0.0, hi, xtol=se * 1e-8))


def p_value(z, vs, ds, vt, dt, quantiles=None, bf_floor: float | None = None) -> np.ndarray:
    """The leaderboard's two-sided p of a statistic z with variance vs + vt, the two terms
    estimated on ds and dt df (module doc): with ds >= ``BF_BELOW_DF`` the larger of the
    Student t p on :func:`t_df` and ``BF_FLOOR`` x the :func:`behrens_fisher` p (the t test
    near the level, Behrens-Fisher's tail where Holm reads it); below, Behrens-Fisher's;
    no seed term (vs NaN or 0): t on dt. ``quantiles`` (of :func:`t_df`) and ``bf_floor``
    for calibration. Vectorised over broadcast arrays."""
    from scipy.special import stdtr

    floor = BF_FLOOR if bf_floor is None else bf_floor
    z, vs, ds, vt, dt = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                              for a in (z, vs, ds, vt, dt)))
    vs0 = np.where(np.isfinite(vs), np.maximum(vs, 0.0), 0.0)
    se = np.sqrt(vs0 + np.maximum(np.nan_to_num(vt), 0.0))
    df = t_df(vs, ds, vt, dt, quantiles)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(z) / se
        p = np.where(se > 0, 2 * stdtr(np.minimum(df, 1e9), -t), np.where(z == 0, 1.0, 0.0))
    seeded = np.isfinite(ds) & (ds > 0) & (vs0 > 0)
    if np.any(seeded):
        bf = behrens_fisher(z, vs, ds, vt, dt)
        few = ds < BF_BELOW_DF
        p = np.where(seeded, np.where(few, bf, np.maximum(p, floor * bf)), p)
    return np.minimum(p, 1.0)


def ci_half_width(vs, ds, vt, dt, alpha: float = 0.05) -> float:
    """Half-width h of the 1 - alpha interval z +- h of :func:`p_value` (scalars), its
    inversion: with >= ``BF_BELOW_DF`` seed df the larger of the t interval's (on
    :func:`t_df`) and Behrens-Fisher's at level alpha / ``BF_FLOOR``; below, Behrens-Fisher's.
    """
    from scipy import stats as _st

    vs0 = float(vs) if np.isfinite(vs) else 0.0
    seeded = bool(np.isfinite(ds) and ds > 0 and vs0 > 0)
    if seeded and ds < BF_BELOW_DF:
        return behrens_fisher_ci(vs, ds, vt, dt, alpha)
    se = float(np.sqrt(max(vs0, 0.0) + max(float(np.nan_to_num(vt)), 0.0)))
    if not se > 0:
        return 0.0
    df = float(t_df(vs, ds, vt, dt))
    h = float(_st.t.ppf(1 - alpha / 2, min(df, 1e9)) * se)
    if seeded and BF_FLOOR > 0 and alpha / BF_FLOOR < 1:
        h = max(h, behrens_fisher_ci(vs, ds, vt, dt, alpha / BF_FLOOR))
    return h


# --------------------------------------------------------------------------- prior


def _trigamma_inv(x: np.ndarray) -> np.ndarray:
    """Inverse of the trigamma function (Smyth's Newton iteration), x > 0."""
    from scipy.special import polygamma

    x = np.asarray(x, dtype=np.float64)
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = polygamma(1, y)
        step = tri * (1 - tri / x) / polygamma(2, y)
        y = y + step
        if np.all(np.abs(step) < 1e-8 * y):
            break
    return y


def fit_prior(v: np.ndarray, d, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Smyth's (2004) moment estimates of the scaled inverse-chi2 prior of variances.

    Args:
        v: (..., n) sample variances (> 0 where used).
        d: their df, broadcastable to ``v``.
        mask: (..., n) bool, the variances to use (default all); at least 2 per row.

    Returns:
        (d0, s0^2), each (...): with e = log v - digamma(d/2) + log(d/2),
        trigamma(d0/2) = var(e) - mean trigamma(d/2) and s0^2 = exp(mean e + digamma(d0/2) -
        log(d0/2)); d0 = inf (the variances differ by chance alone) when the right side <= 0.
    """
    from scipy.special import digamma, polygamma

    v = np.asarray(v, dtype=np.float64)
    d = np.broadcast_to(np.asarray(d, dtype=np.float64), v.shape)
    m = np.ones(v.shape, bool) if mask is None else np.broadcast_to(mask, v.shape)
    n = m.sum(axis=-1)
    safe_d = np.where(m, d, 2.0)
    e = np.where(m, np.log(np.maximum(np.where(m, v, 1.0), 1e-300)) - digamma(safe_d / 2)
                 + np.log(safe_d / 2), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_e = e.sum(axis=-1) / n
        spread = np.where(m, (e - mean_e[..., None]) ** 2, 0.0).sum(axis=-1) / np.maximum(n - 1, 1)
        excess = spread - np.where(m, polygamma(1, safe_d / 2), 0.0).sum(axis=-1) / n
    mean_e, excess = np.asarray(mean_e), np.asarray(excess)
    d0 = np.full(np.shape(mean_e), np.inf)
    s0 = np.array(np.exp(mean_e), dtype=np.float64, ndmin=1).reshape(np.shape(mean_e))
    ok = (excess > 0) & (n > 1)
    if np.any(ok):
        d0[ok] = 2 * _trigamma_inv(excess[ok])
        s0[ok] = np.exp(mean_e[ok] + digamma(d0[ok] / 2) - np.log(d0[ok] / 2))
    return (d0, s0) if d0.ndim else (float(d0), float(s0))


def moderate(v, d, *, min_seeds: int | None = None, alpha: float | None = None,
             max_ratio: float | None = None, two_sided: bool = False,
             location: str = "smyth"):
    """The seed variances of a setup's comparisons (or losses), moderated as the module says.

    Args:
        v: (..., n) own seed variances (ddof 1); NaN where a unit has fewer than 2 seeds.
        d: (..., n) or scalar: their df (seeds - 1).

    Returns:
        dict of (..., n) arrays: ``var`` and ``df`` of the seed term (per seed: divide by the
        number of seeds), ``d0`` the prior df it got, ``s0`` the prior variance (NaN: none),
        ``p`` the upper-tail p of the unit's own variance under the others' prior (NaN: none).

    ``two_sided``: the prior weight from min(p, 1 - p) instead of the upper-tail p: a spread
    below the others' is pulled up only as far as its lower tail allows, one above them as
    before (a candidate of ``mlbench calibrate``: ``simulate.RULES["symmetric"]``).

    ``location``: the leave-one-out prior's s0^2 -- ``"smyth"`` (Smyth's moment estimate, the
    leaderboard's) or ``"median"`` (the median of the other units' v_j / m_j, m_j = the median
    of chi2_{d_j} / d_j, so that it is unbiased for a common variance under chi-square; one
    unstable unit does not lift everyone's prior; a candidate: ``simulate.RULES["robust"]``).
    The prior df d0 is Smyth's in both.
    """
    from scipy import stats as _st

    min_seeds = MIN_POOL_SEEDS if min_seeds is None else min_seeds
    alpha = OUTLIER_ALPHA if alpha is None else alpha
    max_ratio = MAX_PRIOR_RATIO if max_ratio is None else max_ratio
    if location not in ("smyth", "median"):
        raise ValueError(f"Expected location 'smyth' or 'median' but got {location!r}")
    v = np.asarray(v, dtype=np.float64)
    d = np.broadcast_to(np.asarray(d, dtype=np.float64), v.shape).copy()
    ok = np.isfinite(v) & (d >= 1) & (v >= 0)  # units with a seed variance (0 allowed)
    pos = ok & (v > 0)  # ... that can inform a prior (log v)
    n = v.shape[-1]
    d0 = np.zeros(v.shape)
    s0 = np.full(v.shape, np.nan)
    p = np.full(v.shape, np.nan)
    # two passes: leave-one-out priors give each unit's outlier p; the second pass leaves the
    # clear outliers (p < EXCLUDE_P) out of the others' priors too, so that one unstable loss
    # does not widen everyone's prior
    usable = pos
    for rnd in range(2):
        for k in range(n):
            others = [j for j in range(n) if j != k]
            k0, ks, enough = _loo_prior(v[..., others], d[..., others], usable[..., others],
                                        location)
            vk, dk = v[..., k], d[..., k]
            with np.errstate(invalid="ignore", divide="ignore"):
                f = vk / ks
                pk = np.where(k0 < 1e6, _st.f.sf(f, np.maximum(dk, 1.0), np.maximum(k0, 1e-3)),
                              _st.chi2.sf(f * dk, np.maximum(dk, 1.0)))
            has = enough & pos[..., k]
            if rnd == 0:
                p[..., k] = np.where(has, pk, np.nan)
                continue
            s0[..., k] = np.where(has, ks, np.nan)
            pw = np.where(has, pk, 0.0)
            if two_sided:  # a spread below the others' gets the weight of its lower tail
                pw = np.minimum(pw, 1 - pw)
            w = np.minimum(1.0, pw / alpha)
            d0[..., k] = np.where(has & (dk + 1 >= min_seeds),
                                  np.minimum(k0 * w, max_ratio * dk), 0.0)
        if rnd == 0:
            usable = pos & ~(p < EXCLUDE_P)
    s0f = np.where(np.isfinite(s0), s0, 0.0)
    with np.errstate(invalid="ignore"):
        var = np.where(ok, (d0 * s0f + d * np.where(ok, v, 0.0)) / (d0 + d), np.nan)
    return {"var": var, "df": np.where(ok, d0 + d, np.nan), "d0": d0, "s0": s0, "p": p}


def _loo_prior(ov, od, ook, location: str = "smyth"):
    """Smyth prior of the units ``ook`` of (..., m) variances ov on od df: (d0, s0^2, enough),
    d0 capped at their total df; enough: at least 2 such units. ``location="median"``: s0^2
    the median of ov / m, m the median of chi2_od / od (see :func:`moderate`)."""
    enough = ook.sum(axis=-1) >= 2
    shape = ov.shape[:-1]
    if not np.any(enough):
        return np.zeros(shape), np.full(shape, np.nan), enough
    mask = ook | ~enough[..., None]  # rows without enough units: any values, dropped below
    k0, ks = fit_prior(np.where(mask, ov, 1.0), np.where(mask, od, 1.0), mask)
    if location == "median":
        from scipy import stats as _st

        scale = _st.chi2.ppf(0.5, np.maximum(od, 1.0)) / np.maximum(od, 1.0)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without units: NaN
            ks = np.nanmedian(np.where(ook, ov / scale, np.nan), axis=-1)
    total = np.where(ook, od, 0.0).sum(axis=-1)
    return (np.where(enough, np.minimum(k0, total), 0.0), np.where(enough, ks, np.nan),
            enough)


def bartlett(v, d) -> tuple[float, float]:
    """Bartlett's test that variances v (n,) on d (n,) df are equal: (statistic, p)."""
    from scipy import stats as _st

    v = np.asarray(v, dtype=np.float64)
    d = np.broadcast_to(np.asarray(d, dtype=np.float64), v.shape)
    keep = np.isfinite(v) & (v > 0) & (d >= 1)
    v, d = v[keep], d[keep]
    k = len(v)
    if k < 2:
        return np.nan, np.nan
    big = d.sum()
    sp = (d * v).sum() / big
    stat = (big * np.log(sp) - (d * np.log(v)).sum()) \
        / (1 + ((1 / d).sum() - 1 / big) / (3 * (k - 1)))
    return float(stat), float(_st.chi2.sf(stat, k - 1))
