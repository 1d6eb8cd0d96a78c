"""Calibration of the leaderboard's statistics on a test split's real structure (SPEC §5.1).

No training: on the test split's labels and patient ids, scores are simulated for L losses ×
S seeds with patient-level and seed-level random effects, and the leaderboard's comparison is
run on them. Loss 0 is the reference, losses 1 .. L-2 are identical to it (A/A: every
rejection is a false positive) and loss L-1 is better by ``effect`` in population mean AUC
(its rejections measure power). The same replicates are scored by the leaderboard's method
(seed variance pooled over the losses), by the same with each pair's own seed variance
(Welch-Satterthwaite), and by image-level per-seed DeLong with the largest p over seeds (the
rule the leaderboard used before).

Score model for run r = (loss l, seed s), image i of patient p, class c::

    z = (mu_c + effect_l + b_s + g_r + h_rc) * y_ic + a_pc + w_rpc + e_ric

with a_pc ~ N(0, patient_sd^2) shared by every run (patients differ in how hard they are),
w_rpc ~ N(0, run_patient_sd^2) the run's own patient effect (it makes a run's errors on a
patient's films move together, the reason to cluster by patient), e ~ N(0, 1), and seed
effects on the signal: b_s ~ N(0, tau^2) shared by the losses of one seed, g_r ~ N(0, tau^2)
per run and h_rc ~ N(0, tau^2) per run and class. tau is set so that the seed-to-seed SD of
a run's mean AUC is ``seed_sd``; mu_c so that the population AUC is ``auc``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# scipy and mlbench.stats load inside the functions: the command line imports this module
# for its options (add_arguments) and stays fast.

# method: (seed term, test term); the first is the leaderboard's
METHODS = {  # name: (seed term, test term, df rule of stats.t_df); the first is the leaderboard's
    "leaderboard: pooled seed term + cross-seed test term": ("pooled", "cross", "ws-guard"),
    "same, Welch-Satterthwaite df always": ("pooled", "cross", "ws"),
    "same, seed-term df always": ("pooled", "cross", "seed"),
    "own seed term + cross-seed test term, Welch-Satterthwaite": ("own", "cross", "ws"),
    "pooled seed term + seed-averaged test term": ("pooled", "avg", "ws"),
    "own seed term + seed-averaged test term, W-S (SPEC formula)": ("own", "avg", "ws"),
    "image-level DeLong per seed, largest p (old rule)": (None, None, None),
}
LEADERBOARD = next(iter(METHODS))
LEVELS = 16384  # simulated scores are quantised to this many levels (ties: midranks)


@dataclass
class Structure:
    """A test split's structure: labels (N, C) bool and patient id per image."""

    targets: np.ndarray
    groups: np.ndarray
    name: str

    def describe(self) -> str:
        n_pat = len(np.unique(self.groups))
        return (f"{self.name}: {len(self.groups)} images of {n_pat} patients "
                f"({len(self.groups) / max(n_pat, 1):.1f} per patient)")


# --------------------------------------------------------------------------- structures


def _reference_table():
    from mlbench.data.release import read_label_table
    from mlbench.data.sim import reference_table_path

    return read_label_table(reference_table_path())


def real_test_structure(split_list: str | Path | None = None, patients: int | None = None,
                        seed: int = 0) -> Structure:
    """Rows of the real 2020 label table (torchxrayvision): the images of ``split_list``
    (the official ``test_list.txt``), or, without one, every image of randomly drawn
    patients; ``patients`` keeps a seeded random subset of that many patients (whole
    histories kept)."""
    meta, labels = _reference_table()
    if split_list is not None:
        names = set(Path(split_list).read_text().split())
        keep = meta["image"].isin(names).to_numpy().copy()
        name = f"label table rows of {Path(split_list).name}"
    else:
        keep = np.ones(len(meta), bool)
        name = "label table (all patients)"
    pats = np.unique(meta["patient"].to_numpy()[keep])
    if patients is not None and patients < len(pats):
        chosen = np.random.default_rng(seed).choice(pats, patients, replace=False)
        keep = keep & np.isin(meta["patient"].to_numpy(), chosen)
        name += f", {patients} random patients (seed {seed})"
    return Structure(labels[keep] > 0, meta["patient"].to_numpy()[keep], name)


def sim_test_structure(images: int = 3000, seed: int = 0) -> Structure:
    """The test split CXR14-sim writes for ``images`` and ``seed`` (labels and patients
    only; no pixels are rendered)."""
    from mlbench.data.release import parse_findings
    from mlbench.data.sim import assign_split, sample_rows

    rows = sample_rows(images, seed)
    test = assign_split(rows, seed)
    part = rows[test]
    return Structure(parse_findings(part["Finding Labels"]) > 0,
                     part["Patient ID"].astype(int).to_numpy(),
                     f"CXR14-sim test split (images={images}, seed={seed})")


def dataset_structure(root: str | Path) -> Structure:
    """The official test split of a dataset root in the NIH layout (label table + lists)."""
    from mlbench.data.release import ReleaseTables

    tables = ReleaseTables(root)
    test = (tables.meta.official == "test").to_numpy()
    return Structure(tables.labels[test] > 0, tables.meta.patient.to_numpy()[test],
                     f"test split of {root}")


def results_structure(out: str | Path) -> tuple[Structure, dict]:
    """The test split stored in ``OUT/results.db`` (targets and patient ids of its largest
    block of finished runs) and what the results say of the suite: losses and seeds of that
    block, the runs' mean AUC and the pooled seed SD of a run's mean AUC."""
    from mlbench.db import ResultsDB
    from mlbench.leaderboard.analysis import analyse

    path = Path(out)
    with ResultsDB(path if path.suffix == ".db" else path / "results.db", readonly=True) as db:
        blocks, _ = analyse(db)
    blocks = [b for b in blocks if b.stats]
    if not blocks:
        raise ValueError(f"{out}: no finished run with stored test predictions")
    block = max(blocks, key=lambda b: sum(len(s) for s in b.stats.values()))
    if block.ids_note.startswith("no patient ids"):
        raise ValueError(f"{out}: {block.ids_note}")
    pooled = block.pooled()
    means = [r.mean_auc for by in block.stats.values() for r in by.values()]
    info = {"losses": len(block.stats), "seeds": len(block.seeds),
            "auc": float(np.mean(means)),
            "seed_sd": float(np.sqrt(pooled["mean"][0])) if pooled else None}
    return Structure(block.targets > 0, block.groups, f"test split stored in {out}"), info


# --------------------------------------------------------------------------- simulation


def _latent(auc: float, patient_sd: float, run_patient_sd: float) -> tuple[float, float]:
    """(signal mu giving population AUC ``auc``, scale sqrt(2 v) of a pos-neg difference)."""
    from scipy import stats as _st

    scale = np.sqrt(2 * (patient_sd**2 + run_patient_sd**2 + 1.0))
    return float(_st.norm.ppf(auc) * scale), float(scale)


def simulate(structure: Structure, *, replicates: int = 400, losses: int = 4, seeds: int = 3,
             seed_sd: float = 0.003, effect: float = 0.01, auc: float = 0.8,
             patient_sd: float = 0.7, run_patient_sd: float = 0.5, alpha: float = 0.05,
             rule=None, seed: int = 0, threads: int = 2,
             progress: bool = False) -> dict:
    """Rejection rates of the methods of ``METHODS`` over simulated replicates.

    Replicate ``i`` draws from ``numpy.random.default_rng([seed, i])``, so the result does
    not depend on ``threads``.

    Returns:
        dict with ``type1`` and ``power`` ({method: rate}), ``null_tests`` (A/A comparisons
        scored, (losses - 2) per replicate), ``replicates``, ``se_ratio`` (mean patient-
        clustered over image-level test SE of a one-seed difference), ``sd_delta`` (SD of the
        null deltas across replicates) and ``mean_se`` (mean SE of the leaderboard's method
        on them), the classes used, the parameters and the seconds taken.
    """
    from scipy import stats as _st

    from mlbench.stats import (
        SparseRule,
        clustered_terms,
        group_index,
        influence_levels,
        pooled_seed_variance,
        t_df,
    )

    if losses < 3:
        raise ValueError(f"Expected `losses` >= 3 (reference, a null copy, an effect), got {losses}")
    if seeds < 1:
        raise ValueError(f"Expected `seeds` >= 1, got {seeds}")
    if replicates < 1:
        raise ValueError(f"Expected `replicates` >= 1, got {replicates}")
    rule = rule or SparseRule()
    classes, left = rule.check(structure.targets, structure.groups)
    if not classes:
        raise ValueError(f"{structure.name}: no class passes the rule ({rule.describe()})")
    yt = np.ascontiguousarray(structure.targets[:, classes].T)  # (K, N)
    k, n = yt.shape
    gi, ng = group_index(structure.groups)
    mu, scale = _latent(auc, patient_sd, run_patient_sd)
    dens = _st.norm.pdf(_st.norm.ppf(auc)) / scale  # d AUC / d signal
    tau = seed_sd / dens / np.sqrt(1 + 1 / k)  # run-level + class-level seed effects
    mu_eff = float(_st.norm.ppf(min(auc + effect, 0.999)) * scale) - mu
    n_runs = losses * seeds
    t_rows = np.tile(yt, (n_runs, 1))

    def one(rep: int) -> tuple[dict, list, float]:
        rng = np.random.default_rng([seed, rep])
        sig = np.full((losses, seeds, k), mu)
        sig[-1] += mu_eff
        sig += rng.normal(0, tau, (1, seeds, 1))  # shared by the losses of a seed
        sig += rng.normal(0, tau, (losses, seeds, 1)) + rng.normal(0, tau, (losses, seeds, k))
        z = rng.standard_normal((n_runs, k, n))
        z += rng.normal(0, patient_sd, (k, ng))[:, gi]
        z += rng.normal(0, run_patient_sd, (n_runs, k, ng))[:, :, gi]
        z += sig.reshape(n_runs, k, 1) * yt
        z = z.reshape(n_runs * k, n)
        lo, hi = z.min(), z.max()  # one monotone map for all rows: 16384 score levels
        levels = ((z - lo) * ((LEVELS - 1) / (hi - lo))).astype(np.intp)
        aucs, phi = influence_levels(t_rows, levels, LEVELS)
        means = aucs.reshape(losses, seeds, k).mean(axis=2)  # (L, S)
        psi = phi.reshape(losses, seeds, k, n).mean(axis=2)  # (L, S, N)
        pooled = pooled_seed_variance(means)
        out, nulls, ratios = {}, [], []
        for target in range(1, losses):
            d = means[target] - means[0]
            dpsi = psi[target] - psi[0]  # (S, N)
            terms = dict(zip(("cross", "avg"), clustered_terms(dpsi, gi, ng), strict=True))
            ps = {}
            for method, (seed_term, test_term, df_rule) in METHODS.items():
                if seed_term is None:  # images independent, each seed alone, largest p
                    v_img = (dpsi**2).sum(axis=1)
                    ps[method] = float(np.max(2 * _st.norm.sf(np.abs(d) / np.sqrt(v_img))))
                    continue
                if seeds == 1:
                    vs, df = 0.0, np.inf
                elif seed_term == "pooled":
                    vs, df = pooled[0] / seeds, pooled[1]
                else:
                    vs, df = d.var(ddof=1) / seeds, seeds - 1
                var = vs + terms[test_term]
                dfw = t_df(vs, df, terms[test_term], df_rule)
                ps[method] = 2 * _st.t.sf(abs(d.mean()) / np.sqrt(var), dfw) if var > 0 else 1.0
                if method == LEADERBOARD and target < losses - 1:
                    nulls.append((d.mean(), np.sqrt(var)))
            v_clu = np.array([clustered_terms(x[None], gi, ng)[0] for x in dpsi])
            ratios.append(float(np.mean(np.sqrt(v_clu / (dpsi**2).sum(axis=1)))))
            out[target] = {m: ps[m] < alpha for m in METHODS}
        return out, nulls, float(np.mean(ratios))

    t0 = time.perf_counter()
    rej = {m: [] for m in METHODS}
    pow_ = {m: [] for m in METHODS}
    nulls, ratios = [], []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, threads)) as pool:  # numpy sorts release the GIL
        for rep, (out, nl, ratio) in enumerate(pool.map(one, range(replicates))):
            for target, rejected in out.items():
                dest = pow_ if target == losses - 1 else rej
                for m in METHODS:
                    dest[m].append(rejected[m])
            nulls += nl
            ratios.append(ratio)
            if progress and (rep + 1) % max(1, replicates // 10) == 0:
                print(f"  {rep + 1}/{replicates} replicates, {time.perf_counter() - t0:.0f} s",
                      flush=True)
    null_d = np.array([x[0] for x in nulls])
    return {
        "type1": {m: float(np.mean(v)) for m, v in rej.items()},
        "power": {m: float(np.mean(v)) for m, v in pow_.items()},
        "null_tests": len(rej[LEADERBOARD]),
        "replicates": replicates,
        "se_ratio": float(np.mean(ratios)),
        "sd_delta": float(np.std(null_d, ddof=1)) if len(null_d) > 1 else float("nan"),
        "mean_se": float(np.mean([x[1] for x in nulls])) if nulls else float("nan"),
        "classes": classes, "left_out": left,
        "params": dict(replicates=replicates, losses=losses, seeds=seeds, seed_sd=seed_sd,
                       effect=effect, auc=auc, patient_sd=patient_sd,
                       run_patient_sd=run_patient_sd, alpha=alpha, seed=seed),
        "seconds": time.perf_counter() - t0,
    }


def binomial_ci(rate: float, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a rejection rate."""
    from scipy import stats as _st

    x = round(rate * n)
    lo = _st.beta.ppf(0.025, x, n - x + 1) if x > 0 else 0.0
    hi = _st.beta.ppf(0.975, x + 1, n - x) if x < n else 1.0
    return float(lo), float(hi)


def report(structure: Structure, results: list[tuple[str, dict]]) -> str:
    """The calibration table as text."""
    from tabulate import tabulate

    lines = [structure.describe()]
    first = results[0][1]
    names = [f"{c}" for c in first["classes"]]
    if first["left_out"]:
        lines.append(f"classes left out: {first['left_out']}")
    lines.append(f"{len(names)} classes used")
    rows = []
    for label, r in results:
        p = r["params"]
        for m in METHODS:
            lo, hi = binomial_ci(r["type1"][m], r["null_tests"])
            rows.append([label, m, f"{100 * r['type1'][m]:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]",
                         f"{100 * r['power'][m]:.1f}%"])
        lines.append(
            f"{label}: {p['replicates']} replicates x {p['losses'] - 2} A/A comparisons, "
            f"{p['losses']} losses x {p['seeds']} seeds, seed SD of mean AUC {p['seed_sd']:g}, "
            f"AUC {p['auc']:g}, power at +{p['effect']:g}; clustered / image-level SE "
            f"{r['se_ratio']:.2f}; SD of null deltas {r['sd_delta']:.5f} vs mean SE "
            f"{r['mean_se']:.5f}; {r['seconds']:.0f} s")
    table = tabulate(rows, headers=["scenario", "method", f"type-I error at {100 * first['params']['alpha']:g}% (95% CI)",
                                    "power"], tablefmt="simple", disable_numparse=True)
    return "\n".join(lines) + "\n\n" + table + "\n"


def calibrate(structure: Structure, *, scenarios: list[tuple[str, float]] | None = None,
              progress: bool = True, **kwargs) -> str:
    """Run ``simulate`` for each (label, seed SD) scenario and return the report."""
    scenarios = scenarios or [("seed SD 0.0005 (test-set noise dominates)", 0.0005),
                              ("seed SD 0.005 (seed noise dominates)", 0.005)]
    results = []
    for label, sd in scenarios:
        if progress:
            print(f"{label} ...", flush=True)
        results.append((label, simulate(structure, seed_sd=sd, progress=progress, **kwargs)))
    return report(structure, results)
