"""Simulated leaderboards on a test split's real structure, for calibrating the statistics.

The score model (one run r = (loss l, seed s), image i of patient p, class c)::

    z = mu_lc * y_ic + a_pc + u_lpc + w_rpc + sqrt(q) e_ic + sqrt(1 - q) e_ric

a: the patient's difficulty, shared by every run; u: a loss x patient effect, shared by the
seeds of one loss (so an A/A difference has a true test-set term); w: the run's own patient
effect; e: image noise, a fraction q (``shared_image``) shared by every run. mu_lc gives the
population AUC of the class (``ScoreModel.auc``, or more for an effect loss). On top of it the
seed effect delta_ls moves the run's mean AUC (it is added to the signal of every class):
delta_ls = sigma_l (sqrt(rho) x_s + sqrt(1 - rho) x_ls), x ~ N(0, 1), so seed effects are
correlated between the losses of one seed (``rho``) or not, and each loss has its own spread.
``seed_sd`` is the SD over seeds of a run's mean AUC on the fixed test split -- what a results
folder shows -- so sigma_l^2 = (k_l seed_sd)^2 - floor, the floor being the part each run's
own test-set noise (w, e) gives.

Two engines draw the same model:

* ``full``: every image's score, DeLong influence values by counting
  (:func:`mlbench.stats.influence_levels`), summed per patient: the leaderboard's own
  computation, costly on 25,596 x 14.
* ``patient`` (default): the per-patient sums of the class-averaged influence values drawn
  directly as Gaussians with their exact covariances across runs, from the first-order
  (Hajek) projection of the AUC: for a positive image h = (P(negative score < z) - AUC) / m,
  for a negative one (P(positive score > z) - AUC) / n; two images' h covary by a bivariate
  normal orthant probability (Owen's T) of their scores' correlation, so each patient's
  covariance is a sum over its images' label pairs. The run's mean AUC is the sum of its
  patient values. About 1,000x cheaper; checked against ``full`` (tests, docs/HARNESS.md).

Both give, per replicate, ``auc`` (L, S) mean AUC of every run and ``psum`` (L, S, G) the
per-patient sums of its class-averaged influence values, which is all the leaderboard's
statistics read (:mod:`mlbench.stats.seedvar`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlbench.stats.metrics import group_index

LEVELS = 16384  # full engine: scores quantised to this many levels (ties: midranks)


@dataclass(frozen=True)
class ScoreModel:
    """Test-set part of the score model (SDs on the latent scale; image noise has SD 1)."""

    auc: float = 0.8
    patient_sd: float = 0.7
    loss_patient_sd: float = 0.3
    run_patient_sd: float = 0.3
    shared_image: float = 0.5

    @property
    def sigma(self) -> float:
        """SD of a score given its label."""
        return float(np.sqrt(self.patient_sd**2 + self.loss_patient_sd**2
                             + self.run_patient_sd**2 + 1.0))

    def mu(self, auc) -> np.ndarray:
        """Signal giving population AUC ``auc`` (binormal, equal variances)."""
        from scipy import stats as _st

        return _st.norm.ppf(np.clip(auc, 0.5 + 1e-9, 1 - 1e-9)) * self.sigma * np.sqrt(2)

    def density(self, auc) -> np.ndarray:
        """d AUC / d signal at ``auc``."""
        from scipy import stats as _st

        s2 = self.sigma * np.sqrt(2)
        return _st.norm.pdf(self.mu(auc) / s2) / s2


@dataclass(frozen=True)
class Design:
    """One simulated setup: losses x seeds, seed spreads, effects.

    Loss 0 is the reference. ``spread`` (L,) multiplies ``seed_sd`` per loss (1: as stable as
    the reference); ``rho`` the correlation of seed effects between the losses of one seed.
    ``effect`` (L,) the true gain in population mean AUC of each loss over the reference,
    spread over every class, or only over the classes ``effect_classes`` (indices into the
    classes used) when given.
    """

    losses: int = 4
    seeds: int = 3
    seed_sd: float = 0.003
    spread: tuple = ()
    rho: float = 0.0
    effect: tuple = ()
    effect_classes: tuple = ()

    def spreads(self) -> np.ndarray:
        k = np.ones(self.losses)
        k[: len(self.spread)] = self.spread
        return k

    def effects(self) -> np.ndarray:
        e = np.zeros(self.losses)
        e[: len(self.effect)] = self.effect
        return e


@dataclass
class Split:
    """A test split prepared for simulation: targets of the classes used, patients."""

    targets: np.ndarray  # (N, K) bool, the classes used
    groups: np.ndarray  # (N,) patient index 0..G-1
    n_groups: int
    name: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, targets, groups, name: str = "") -> Split:
        gi, ng = group_index(groups)
        return cls(np.asarray(targets, bool), gi, ng, name)


# --------------------------------------------------------------------------- covariances


def _phi2_minus(h1, h2, r):
    """Phi2(h1, h2; r) - Phi(h1) Phi(h2) for h1, h2 > 0 (bivariate normal orthant), by
    Owen's T: Phi2(h, k; r) = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k)."""
    from scipy import special
    from scipy import stats as _st

    h1, h2, r = np.broadcast_arrays(np.asarray(h1, float), np.asarray(h2, float),
                                    np.asarray(r, float))
    one = np.abs(r) >= 1 - 1e-12
    q = np.sqrt(np.maximum(1 - r**2, 1e-300))
    a1 = (h2 - r * h1) / (h1 * q)
    a2 = (h1 - r * h2) / (h2 * q)
    p2 = 0.5 * (_st.norm.cdf(h1) + _st.norm.cdf(h2)) - special.owens_t(h1, a1) \
        - special.owens_t(h2, a2)
    p2 = np.where(one & (r > 0), _st.norm.cdf(np.minimum(h1, h2)), p2)
    return p2 - _st.norm.cdf(h1) * _st.norm.cdf(h2)


def _counts(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(p, q) (K, G) positive / negative images per class and patient; (m, n) (K,)."""
    key = "counts"
    if key not in split._cache:
        t = split.targets
        g = split.groups
        p = np.stack([np.bincount(g, t[:, c], split.n_groups) for c in range(t.shape[1])])
        tot = np.bincount(g, None, split.n_groups)[None, :]
        q = tot - p
        split._cache[key] = (p, q, p.sum(axis=1), q.sum(axis=1))
    return split._cache[key]


def patient_cov(split: Split, model: ScoreModel, auc1, auc2, level: str,
                images_independent: bool = False) -> np.ndarray:
    """(G,) covariance across two runs of a patient's sum of class-averaged influence values.

    Args:
        auc1, auc2: (K,) population AUC per class of the two runs.
        level: what the two runs share beyond the patient effect a and the shared image
            noise: ``"run"`` (the same run: every effect), ``"loss"`` (two seeds of one loss:
            u), ``"cross"`` (two losses).
        images_independent: drop the covariances between a patient's images (what an
            image-level DeLong variance assumes).
    """
    p, q, m, n = _counts(split)
    sig2 = model.sigma**2
    pat = model.patient_sd**2 + (model.loss_patient_sd**2 if level in ("run", "loss") else 0) \
        + (model.run_patient_sd**2 if level == "run" else 0)
    img = model.shared_image + ((1 - model.shared_image) if level == "run" else 0)
    r_same, r_diff = (pat + img) / sig2, pat / sig2  # score correlation: same / other image
    h1 = np.asarray(model.mu(auc1)) / (model.sigma * np.sqrt(2))
    h2 = np.asarray(model.mu(auc2)) / (model.sigma * np.sqrt(2))
    k = len(m)
    # orthant covariances: same label -> +r/2, opposite labels -> -r/2 (see module doc)
    pp_s, pp_d = _phi2_minus(h1, h2, r_same / 2) / m**2, _phi2_minus(h1, h2, r_diff / 2) / m**2
    nn_s, nn_d = _phi2_minus(h1, h2, r_same / 2) / n**2, _phi2_minus(h1, h2, r_diff / 2) / n**2
    pn = _phi2_minus(h1, h2, -r_diff / 2) / (m * n)
    cov = pp_s[:, None] * p + nn_s[:, None] * q
    if not images_independent:
        cov = cov + pp_d[:, None] * p * (p - 1) + nn_d[:, None] * q * (q - 1) \
            + 2 * pn[:, None] * p * q
    return cov.sum(axis=0) / k**2


@dataclass
class PatientModel:
    """Per-patient variance components of the class-averaged influence sums (G,) each.

    A reference-like (null) run: Psi = sqrt(va) z_a + sqrt(vu) z_u,loss + sqrt(vw) z_w,run.
    An effect loss e: Psi = beta z_a + sqrt(vu_e) z_u + sqrt(vw_e) z_w (beta z_a its part
    shared with the null runs).
    """

    va: np.ndarray
    vu: np.ndarray
    vw: np.ndarray
    effects: dict  # effect key -> (beta, vu, vw)

    def floor(self, key=None) -> float:
        """Variance over seeds of a run's mean AUC from its own test-set noise alone."""
        return float((self.vw if key is None else self.effects[key][2]).sum())


def patient_model(split: Split, model: ScoreModel, effect_aucs: dict | None = None) -> PatientModel:
    """Variance components for null runs and, per key, effect losses with AUCs (K,)."""
    k = split.targets.shape[1]
    base = np.full(k, model.auc)
    c_run = patient_cov(split, model, base, base, "run")
    c_loss = patient_cov(split, model, base, base, "loss")
    c_cross = patient_cov(split, model, base, base, "cross")
    va = np.maximum(c_cross, 0.0)
    effects = {}
    for key, aucs in (effect_aucs or {}).items():
        e_run = patient_cov(split, model, aucs, aucs, "run")
        e_loss = patient_cov(split, model, aucs, aucs, "loss")
        e_ref = patient_cov(split, model, aucs, base, "cross")
        beta = np.where(va > 0, e_ref / np.sqrt(np.where(va > 0, va, 1.0)), 0.0)
        effects[key] = (beta, np.maximum(e_loss - beta**2, 0.0), np.maximum(e_run - e_loss, 0.0))
    return PatientModel(va, np.maximum(c_loss - c_cross, 0.0), np.maximum(c_run - c_loss, 0.0),
                        effects)


# --------------------------------------------------------------------------- designs


def class_aucs(design: Design, model: ScoreModel, k: int) -> list[np.ndarray]:
    """(K,) population AUC per class of every loss."""
    out = []
    for e in design.effects():
        a = np.full(k, model.auc)
        if e:
            cls = list(design.effect_classes) or list(range(k))
            a[cls] += e * k / len(cls)  # the mean over classes gains e
        out.append(np.minimum(a, 0.999))
    return out


def seed_sigmas(design: Design, floors: np.ndarray) -> np.ndarray:
    """(L,) SD of each loss's seed effect so that its runs' mean AUC has SD k_l seed_sd."""
    target = (design.spreads() * design.seed_sd) ** 2
    if np.any(target < floors * (1 - 1e-9)):
        worst = float(np.sqrt(floors.max()))
        raise ValueError(
            f"Expected `seed_sd` >= {worst:.4g}: on this split a run's own test-set noise "
            f"alone makes its mean AUC vary that much over seeds (the score model's "
            f"run-level effects); got {design.seed_sd:g}")
    return np.sqrt(np.maximum(target - floors, 0.0))


def _seed_effects(rng, design: Design, sig: np.ndarray, reps: int) -> np.ndarray:
    """(R, L, S) seed effects on mean AUC."""
    shared = rng.standard_normal((reps, 1, design.seeds))
    own = rng.standard_normal((reps, design.losses, design.seeds))
    return sig[None, :, None] * (np.sqrt(design.rho) * shared + np.sqrt(1 - design.rho) * own)


def draw_patient(split: Split, model: ScoreModel, design: Design, reps: int, rng,
                 pm: PatientModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Patient engine: ``reps`` replicates -> (auc (R, L, S), psum (R, L, S, G))."""
    k = split.targets.shape[1]
    aucs = class_aucs(design, model, k)
    keys = [tuple(np.round(a, 12)) for a in aucs]
    effect_aucs = {key: a for key, a, e in zip(keys, aucs, design.effects(), strict=True) if e}
    if pm is None:
        pm = patient_model(split, model, effect_aucs)
    n_l, n_s, g = design.losses, design.seeds, split.n_groups
    floors = np.array([pm.floor(key if e else None)
                       for key, e in zip(keys, design.effects(), strict=True)])
    sig = seed_sigmas(design, floors)
    za = rng.standard_normal((reps, 1, 1, g))
    zu = rng.standard_normal((reps, n_l, 1, g))
    zw = rng.standard_normal((reps, n_l, n_s, g))
    loads = []
    for key, e in zip(keys, design.effects(), strict=True):
        beta, vu, vw = pm.effects[key] if e else (np.sqrt(pm.va), pm.vu, pm.vw)
        loads.append((beta, np.sqrt(vu), np.sqrt(vw)))
    la = np.stack([x[0] for x in loads])[None, :, None, :]  # (1, L, 1, G)
    lu = np.stack([x[1] for x in loads])[None, :, None, :]
    lw = np.stack([x[2] for x in loads])[None, :, None, :]
    psum = la * za + lu * zu + lw * zw
    means = np.array([a.mean() for a in aucs])
    auc = means[None, :, None] + psum.sum(axis=-1) + _seed_effects(rng, design, sig, reps)
    return auc, psum


def draw_full(split: Split, model: ScoreModel, design: Design, reps: int, rng,
              floors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full engine: every image's score -> (auc (R, L, S), psum (R, L, S, G))."""
    from mlbench.stats.delong import influence_levels

    yt = np.ascontiguousarray(split.targets.T)  # (K, N)
    k, n = yt.shape
    gi, g = split.groups, split.n_groups
    n_l, n_s = design.losses, design.seeds
    aucs = class_aucs(design, model, k)
    mu = np.stack([model.mu(a) for a in aucs])  # (L, K)
    dens = np.stack([model.density(a).mean() for a in aucs])  # (L,) d mean AUC / d signal
    if floors is None:
        keys = {tuple(np.round(a, 12)): a for a, e in zip(aucs, design.effects(), strict=True)
                if e}
        pm = patient_model(split, model, keys)
        floors = np.array([pm.floor(tuple(np.round(a, 12)) if e else None)
                           for a, e in zip(aucs, design.effects(), strict=True)])
    sig = seed_sigmas(design, floors)
    t_rows = np.tile(yt, (n_l * n_s, 1))
    auc_out = np.empty((reps, n_l, n_s))
    psum_out = np.empty((reps, n_l, n_s, g))
    q = model.shared_image
    for rep in range(reps):
        delta = _seed_effects(rng, design, sig, 1)[0]  # (L, S) in AUC
        signal = mu[:, None, :] + (delta / dens[:, None])[:, :, None]  # (L, S, K)
        z = np.sqrt(1 - q) * rng.standard_normal((n_l, n_s, k, n))
        z += np.sqrt(q) * rng.standard_normal((k, n))
        z += rng.normal(0, model.patient_sd, (k, g))[:, gi]
        z += rng.normal(0, model.loss_patient_sd, (n_l, 1, k, g))[..., gi]
        z += rng.normal(0, model.run_patient_sd, (n_l, n_s, k, g))[..., gi]
        z += signal[..., None] * yt
        z = z.reshape(n_l * n_s * k, n)
        lo, hi = z.min(), z.max()
        levels = ((z - lo) * ((LEVELS - 1) / (hi - lo))).astype(np.intp)
        a, phi = influence_levels(t_rows, levels, LEVELS)
        auc_out[rep] = a.reshape(n_l, n_s, k).mean(axis=2)
        psi = phi.reshape(n_l * n_s, k, n).mean(axis=1)  # (L*S, N)
        offs = (np.arange(n_l * n_s) * g)[:, None]
        sums = np.bincount((gi[None, :] + offs).ravel(), psi.ravel(), n_l * n_s * g)
        psum_out[rep] = sums.reshape(n_l, n_s, g)
    return auc_out, psum_out


def se_ratio(split: Split, model: ScoreModel) -> float:
    """Patient-clustered over image-level SE of an A/A difference on one seed."""
    k = split.targets.shape[1]
    base = np.full(k, model.auc)
    out = []
    for indep in (False, True):
        run = patient_cov(split, model, base, base, "run", indep).sum()
        cross = patient_cov(split, model, base, base, "cross", indep).sum()
        out.append(2 * (run - cross))
    return float(np.sqrt(out[0] / out[1]))


# --------------------------------------------------------------------------- the rules


def _old_df(vs, ds, vt):
    """df of the rule before issue 30: Welch-Satterthwaite with an exact test term, the seed
    term's own df when that is below 4."""
    from mlbench.stats.seedvar import satterthwaite

    return np.where(ds < 4, ds, satterthwaite(vs, ds, vt, np.inf))


def _own(values):
    """(..., S) -> own variance (ddof 1) and df."""
    n = values.shape[-1]
    return values.var(axis=-1, ddof=1), np.full(values.shape[:-1], float(n - 1))


def _pooled(auc):
    """(R, L, S) -> (var of a one-seed difference, df, var of one run's mean, df) (R,)."""
    n_l, n_s = auc.shape[-2:]
    res = auc - auc.mean(-1, keepdims=True) - auc.mean(-2, keepdims=True) \
        + auc.mean((-2, -1), keepdims=True)
    within = auc - auc.mean(-1, keepdims=True)
    df_d, df_m = (n_l - 1) * (n_s - 1), n_l * (n_s - 1)
    return (2 * (res**2).sum((-2, -1)) / df_d, float(df_d),
            (within**2).sum((-2, -1)) / df_m, float(df_m))


def _moderated(auc, delta, **knobs):
    from mlbench.stats import seedvar

    s2, d = _own(delta)
    m = seedvar.moderate(s2, d, **knobs)
    w2, dw = _own(auc)
    mm = seedvar.moderate(w2, dw, **knobs)
    return (m["var"], m["df"]), (mm["var"], mm["df"])


def _rule_leaderboard(auc, delta):
    """Each comparison's (each loss's) own seed variance; t on ``seedvar.t_df`` with 3+
    seeds, Behrens-Fisher with 2 (:func:`mlbench.stats.seedvar.p_value`)."""
    return _own(delta), _own(auc), "lb"


def _rule_moderated_bf(auc, delta):
    """The guarded moderated seed term, Behrens-Fisher with the test term (the leaderboard's
    rule of the third round of issue 30)."""
    return (*_moderated(auc, delta), "bf")


def _rule_moderated_t(auc, delta):
    """The guarded moderated seed term with the leaderboard's test (``seedvar.p_value``)."""
    return (*_moderated(auc, delta), "lb")


def _rule_symmetric(auc, delta):
    """The leaderboard's, the prior weight from min(p, 1 - p) (``moderate(two_sided=True)``)."""
    return (*_moderated(auc, delta, two_sided=True), "bf")


def _rule_robust(auc, delta):
    """The leaderboard's, the prior location the others' median (``moderate(location=
    "median")``)."""
    return (*_moderated(auc, delta, location="median"), "bf")


def per_loss_terms(auc, pooled_r: bool = False, **knobs):
    """Seed terms from per-LOSS units: each loss's own seed variance (over seeds, S - 1 df)
    moderated against the other losses' (:func:`mlbench.stats.seedvar.moderate`), then a
    comparison's (loss l vs the reference 0) s~_l^2 + s~_0^2 - 2 r s~_l s~_0, r the paired
    sample correlation of the two losses' mean AUC over seeds (``pooled_r``: the mean of the
    comparisons' Fisher z, one r per setup), df the smaller of the two losses' moderated df.
    Unmoderated (own variances, the paired r) it is the paired difference's own variance.

    Returns ((var, df) (..., L-1) of the comparisons, (var, df) (..., L) of the losses)."""
    from mlbench.stats import seedvar

    w2, dw = _own(auc)
    mm = seedvar.moderate(w2, dw, **knobs)
    x = auc - auc.mean(-1, keepdims=True)
    cov = (x[..., 1:, :] * x[..., :1, :]).sum(-1) / (auc.shape[-1] - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(np.nan_to_num(cov / np.sqrt(w2[..., 1:] * w2[..., :1])), -1.0, 1.0)
    if pooled_r:
        z = np.arctanh(np.clip(r, -1 + 1e-9, 1 - 1e-9)).mean(-1, keepdims=True)
        r = np.broadcast_to(np.tanh(z), r.shape)
    va, vb = mm["var"][..., 1:], mm["var"][..., :1]
    var = np.maximum(va + vb - 2 * r * np.sqrt(va * vb), 0.0)
    df = np.minimum(mm["df"][..., 1:], mm["df"][..., :1])
    return (var, df), (mm["var"], mm["df"])


def _rule_per_loss(auc, delta):
    """Per-loss units, the paired correlation (:func:`per_loss_terms`), Behrens-Fisher p."""
    return (*per_loss_terms(auc), "bf")


def _rule_per_loss_r(auc, delta):
    """Per-loss units, one pooled correlation per setup (:func:`per_loss_terms`)."""
    return (*per_loss_terms(auc, pooled_r=True), "bf")


def _rule_guarded(auc, delta):
    return (*_moderated(auc, delta), "new")


def _rule_own_bf(auc, delta):
    return _own(delta), _own(auc), "bf"


def _smyth(v, d, loc, cap):
    """Smyth's moderated variance: prior df from the units' spread (inf when they agree),
    prior location ``loc`` (the two-way pooled variance), df capped at the pooled df."""
    from mlbench.stats import seedvar

    d0, _ = seedvar.fit_prior(np.maximum(v, 1e-300), d)
    d0 = np.asarray(d0, dtype=np.float64)[..., None]
    s0 = np.asarray(loc)[..., None]
    fin = np.isfinite(d0)
    w = np.where(fin, d0, 0.0)
    var = np.where(fin, (w * s0 + d * v) / (w + d), s0)
    return var, np.broadcast_to(np.minimum(d0 + d, cap), v.shape)


def _rule_smyth(auc, delta):
    vd, dd, vm, dm = _pooled(auc)
    s2, d = _own(delta)
    w2, dw = _own(auc)
    return _smyth(s2, d, vd, dd), _smyth(w2, dw, vm, dm), "bf"


def _rule_pooled(auc, delta):
    vd, dd, vm, dm = _pooled(auc)
    c, n_l = delta.shape[-2], auc.shape[-2]
    return ((np.repeat(vd[..., None], c, -1), np.full(vd.shape + (c,), dd)),
            (np.repeat(vm[..., None], n_l, -1), np.full(vm.shape + (n_l,), dm)), "old")


def _rule_own_ws(auc, delta):
    return _own(delta), _own(auc), "sat"


def _rule_own_guard(auc, delta):
    return _own(delta), _own(auc), "old"


# name: (function, what it is); the first is the leaderboard's
RULES = {
    "leaderboard": (_rule_leaderboard, "leaderboard: each comparison's own seed variance; "
                    "t on the df of both terms at the seed term's upper bound (3+ seeds), "
                    "Behrens-Fisher (2 seeds)"),
    "moderated-bf": (_rule_moderated_bf, "third round: seed term moderated only as far as "
                     "the others agree (own with 2 seeds), Behrens-Fisher p"),
    "moderated-t": (_rule_moderated_t, "the same moderated seed term with the leaderboard's "
                    "test (t on the bounded df, Behrens-Fisher with 2 seeds)"),
    "pooled": (_rule_pooled, "before issue 30: seed variance pooled over the losses, "
               "W-S df (seed df below 4)"),
    "smyth": (_rule_smyth, "Smyth's moderated variance (prior df from the spread, inf when "
              "they agree; location the pooled variance), Behrens-Fisher p"),
    "symmetric": (_rule_symmetric, "the moderated seed term, the prior weight from "
                  "min(p, 1 - p) (a chance-small spread is pulled up only as far as its lower "
                  "tail allows; above the others' as the leaderboard), Behrens-Fisher p"),
    "robust": (_rule_robust, "the moderated seed term, the leave-one-out prior's "
               "location the others' median (scaled to chi-square) instead of Smyth's moment "
               "estimate, Behrens-Fisher p"),
    "per-loss": (_rule_per_loss, "per-loss units: each loss's seed variance moderated "
                 "against the other losses', a comparison's s~_A^2 + s~_B^2 - 2 r s~_A s~_B "
                 "(r paired), df the smaller, Behrens-Fisher p"),
    "per-loss-r": (_rule_per_loss_r, "per-loss units as per-loss, one pooled correlation "
                   "(mean Fisher z of the comparisons) per setup"),
    "guarded": (_rule_guarded, "the moderated seed term, Student t with the df at the seed "
                "term's upper bound at every seed count (seedvar.t_df)"),
    "own-bf": (_rule_own_bf, "each comparison's own seed variance, Behrens-Fisher p"),
    "own-ws": (_rule_own_ws, "own seed variance, Satterthwaite df of both estimated terms"),
    "own-guard": (_rule_own_guard, "own seed variance, seed df below 4 (paired_comparison "
                  "before issue 30)"),
}


def test_terms(psum) -> dict:
    """The test terms a setup's statistics read: (R, L, S, G) patient sums -> ``diff`` (v, df)
    (R, L-1) of each loss's paired differences with loss 0, ``mean`` (v, df) (R, L) of each
    loss's runs (:func:`mlbench.stats.seedvar.test_term`)."""
    from mlbench.stats import seedvar

    return {"diff": seedvar.test_term(psum[:, 1:] - psum[:, :1]),
            "mean": seedvar.test_term(psum)}


def evaluate(auc, psum, truth, rules=None, alpha: float = 0.05) -> dict:
    """The rules' tests on simulated setups (loss 0 the reference).

    Args:
        auc: (R, L, S) mean AUC of every run; psum: (R, L, S, G) its patient sums.
        truth: (L,) population mean AUC of every loss (for the CI coverage).
        rules: names of :data:`RULES`, or a mapping name -> (function, what it is) of rules
            of that form (default: all of :data:`RULES`).

    Returns:
        {rule: {"p": (R, L-1) p of each loss vs the reference, "cover": (R, L) whether each
        loss's mean-AUC CI holds its true mean}}.
    """
    return evaluate_terms(auc, test_terms(psum), truth, rules, alpha)


def evaluate_terms(auc, terms: dict, truth, rules=None, alpha: float = 0.05) -> dict:
    """:func:`evaluate` from the test terms (:func:`test_terms`) instead of the patient sums.

    A rule's function maps (auc (R, L, S), delta (R, L-1, S)) to ((var, df) of the
    comparisons' seed terms, (var, df) of the losses', test): ``"lb"`` (the leaderboard's,
    :func:`mlbench.stats.seedvar.p_value`; ``("lb", quantiles, bf_floor)`` the same with
    other constants), ``"bf"``
    (:func:`mlbench.stats.seedvar.behrens_fisher`), ``"new"`` (t with
    :func:`mlbench.stats.seedvar.t_df`), ``"old"`` (before issue 30), ``"sat"``
    (Satterthwaite of both estimated terms), ``"ws"`` (Welch-Satterthwaite, exact test term)
    or a function (vs, ds, vt, dt) -> df.
    """
    from scipy import stats as _st

    from mlbench.stats import seedvar

    table = rules if isinstance(rules, dict) else {r: RULES[r] for r in (rules or RULES)}
    delta = auc[:, 1:] - auc[:, :1]
    n_s = auc.shape[-1]
    (vt_d, dt_d), (vt_m, dt_m) = terms["diff"], terms["mean"]
    est = delta.mean(-1)
    mean = auc.mean(-1)
    out = {}
    for name, (fn, _) in table.items():
        (vd, dd), (vm, dm), dfrule = fn(auc, delta)
        res = {}
        for key, (v, ds, vt, dt, x, centre) in {
                "p": (vd, dd, vt_d, dt_d, est, 0.0),
                "cover": (vm, dm, vt_m, dt_m, mean, np.asarray(truth)[None, :])}.items():
            vs = v / n_s
            if dfrule == "sat":
                dfrule = seedvar.satterthwaite
            if isinstance(dfrule, tuple) or dfrule in ("bf", "lb"):
                if dfrule == "bf":
                    p = seedvar.behrens_fisher(x - centre, vs, ds, vt, dt)
                else:  # "lb", or ("lb", quantiles, bf_floor): other constants
                    extra = dfrule[1:] if isinstance(dfrule, tuple) else ()
                    p = seedvar.p_value(x - centre, vs, ds, vt, dt, *extra)
                res[key] = p if key == "p" else p >= alpha
                continue
            if callable(dfrule):
                df = dfrule(vs, ds, vt, dt)
            elif dfrule == "new":
                df = seedvar.t_df(vs, ds, vt, dt)
            elif dfrule == "old":
                df = _old_df(vs, ds, vt)
            else:
                df = seedvar.satterthwaite(vs, ds, vt, np.inf)
            se = np.sqrt(vs + vt)
            p = 2 * _st.t.sf(np.abs(x - centre) / se, df)
            res[key] = p if key == "p" else p >= alpha
        out[name] = res
    return out


def holm_any(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """(R, C) p-values -> (R,) whether Holm's step-down rejects any hypothesis."""
    c = p.shape[-1]
    return (np.sort(p, axis=-1)[..., 0] <= alpha / c) if c else np.zeros(p.shape[:-1], bool)
