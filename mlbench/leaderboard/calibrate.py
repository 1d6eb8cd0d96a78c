"""Calibration of the leaderboard's statistics on a test split's real structure (SPEC §5.1).

No training: on the test split's labels and patient ids, L losses x S seeds are simulated with
patient-level, loss x patient and seed-level random effects (the score model of
:mod:`mlbench.stats.simulate`), and the leaderboard's tests are run on them beside the
alternatives (``mlbench.stats.simulate.RULES``: the pooled rule of before issue 30, the own
seed variance with Welch-Satterthwaite df, ...). Loss 0 is the reference; in the null
replicates every loss equals it in population mean AUC (A/A: every rejection is a false
positive); in as many power replicates the last loss is better by ``effect`` (spread over
every class, or confined to ``effect_classes``). Seed spreads may differ by loss (``spread``:
a multiple of ``seed_sd`` per loss; ``--unstable 3`` makes loss 1 three times as unstable) and
seed effects may be correlated between the losses of one seed (``rho``).

Reported per rule: the per-comparison type-I error (all A/A comparisons, and those of the
unstable losses alone), the family-wise error after Holm, the power, and the coverage of the
per-loss 95% CI of mean AUC; and, to check the model, the SD over seeds of a run's mean AUC
the simulated runs show beside the ``seed_sd`` asked for. With OUT the losses, seeds, mean AUC
and every loss's own seed spread come from the results (:func:`spreads_of`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# scipy and mlbench.stats load inside the functions: importing this module stays fast.

LEADERBOARD = "leaderboard"  # the key of the leaderboard's rule in simulate.RULES


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


def sim_test_structure(images: int = 3000, seed: int = 0, **knobs) -> Structure:
    """The test split CXR14-sim writes for ``images``, ``seed`` and its test-split knobs
    (``test_fraction``, ``sick_preference``; labels and patients only, no pixels)."""
    from mlbench.data.release import parse_findings
    from mlbench.data.sim import split_rows

    rows, test = split_rows(images, seed, **knobs)
    part = rows[test]
    extra = "".join(f", {k}={v:g}" for k, v in knobs.items() if v is not None)
    return Structure(parse_findings(part["Finding Labels"]) > 0,
                     part["Patient ID"].astype(int).to_numpy(),
                     f"CXR14-sim test split (images={images}, seed={seed}{extra})")


def dataset_structure(root: str | Path) -> Structure:
    """The official test split of a dataset root in the NIH layout (label table + lists)."""
    from mlbench.data.release import ReleaseTables

    tables = ReleaseTables(root)
    test = (tables.meta.official == "test").to_numpy()
    return Structure(tables.labels[test] > 0, tables.meta.patient.to_numpy()[test],
                     f"test split of {root}")


def results_structure(out: str | Path, test_set: str | None = None) -> tuple[Structure, dict]:
    """The test split stored in ``OUT/results.db`` (targets and patient ids of its largest
    block of finished runs) and what the results say of the suite (:func:`spreads_of`).

    ``test_set``: one of the named test sets the runs were scored on (``eval.test_sets``;
    None or "nih": the runs' own test split). A test set with missing labels keeps the
    classes its leaderboard uses and the images labelled for all of them (said in the
    structure's name)."""
    from mlbench.db import ResultsDB
    from mlbench.leaderboard.analysis import analyse

    path = Path(out)
    with ResultsDB(path if path.suffix == ".db" else path / "results.db", readonly=True) as db:
        own = test_set in (None, "nih")
        if not own and test_set not in db.scored_test_sets():
            raise ValueError(f"{out}: no run scored on test set {test_set!r}; scored: "
                             f"{['nih', *db.scored_test_sets()]}")
        blocks, _ = analyse(db if own else db.for_test_set(test_set))
        reference = db.get_meta("reference", "bce")
    blocks = [b for b in blocks if b.stats]
    if not blocks:
        raise ValueError(f"{out}: no finished run with stored test predictions")
    block = max(blocks, key=lambda b: sum(len(s) for s in b.stats.values()))
    if block.ids_note.startswith("no patient ids"):
        raise ValueError(f"{out}: {block.ids_note}")
    info = spreads_of(block, reference)
    name = f"test split stored in {out}" if own else f"test set {test_set} stored in {out}"
    if block.mask is None:
        return Structure(block.targets > 0, block.groups, name), info
    if not block.classes:
        raise ValueError(f"{out}: no class of test set {test_set} passes the sparse-class "
                         "rule: nothing to calibrate")
    keep = block.mask[:, block.classes].all(axis=1)
    targets = np.zeros(block.targets.shape, bool)
    targets[:, block.classes] = block.targets[:, block.classes] > 0
    return Structure(targets[keep], block.groups[keep],
                     f"{name} ({int(keep.sum())} of {len(keep)} images: those labelled for "
                     "every class used)"), info


def spreads_of(block, reference: str) -> dict:
    """Each loss's own seed spread in a block of results and what the leaderboard did with it.

    Returns:
        dict: ``losses``, ``seeds``, ``auc`` (mean of the runs' mean AUC), ``seed_sd`` (the
        reference's SD over seeds of a run's mean AUC, else the median loss's), ``spread``
        (per loss, reference first: its seed SD / ``seed_sd``), ``rows`` (per loss: seeds, SD
        of mean AUC, SD of the paired differences with the reference, outlier p, the seed term
        the leaderboard used), ``bartlett`` (stat, p) of equal spreads of the differences.
    """
    from mlbench.leaderboard.analysis import unstable_flags

    terms = block.seed_terms(reference)
    losses = list(terms["mean"])
    if reference in losses:
        losses.remove(reference)
        losses.insert(0, reference)
    sd = {loss: float(np.sqrt(terms["mean"][loss].own_var)) for loss in losses}
    finite = [v for v in sd.values() if np.isfinite(v)]
    base = sd.get(reference) if np.isfinite(sd.get(reference, np.nan)) else (
        float(np.median(finite)) if finite else None)
    flags = unstable_flags(terms)
    rows = []
    for loss in losses:
        d = terms["diff"].get(loss)
        m = terms["mean"][loss]
        rows.append({"loss": loss, "seeds": len(block.stats[loss]), "sd": sd[loss],
                     "sd_delta": float(np.sqrt(d.own_var)) if d else np.nan,
                     "p": d.outlier_p if d else m.outlier_p,
                     "unstable": bool(flags.get(loss)),
                     "term": (d or m).label})
    means = [r.mean_auc for by in block.stats.values() for r in by.values()]
    spread = [(sd[loss] / base) if base and np.isfinite(sd[loss]) else 1.0 for loss in losses]
    return {"losses": len(losses), "seeds": len(block.seeds), "auc": float(np.mean(means)),
            "seed_sd": base, "spread": spread, "rows": rows, "bartlett": terms["bartlett"]}


def spread_report(info: dict) -> str:
    """The results folder's seed spreads as text."""
    from tabulate import tabulate

    rows = [[r["loss"], r["seeds"], f"{r['sd']:.4f}" if np.isfinite(r["sd"]) else "",
             f"{r['sd_delta']:.4f}" if np.isfinite(r["sd_delta"]) else "",
             f"{r['p']:.2g}" if np.isfinite(r["p"]) else "",
             "unstable" if r["unstable"] else "", r["term"]] for r in info["rows"]]
    stat, p = info["bartlett"]
    text = tabulate(rows, headers=["loss", "seeds", "SD of mean AUC", "SD of Δ vs ref",
                                   "outlier p", "", "seed term the leaderboard used"],
                    disable_numparse=True)
    het = (f"Bartlett's test of equal seed spreads of Δ: chi2 = {stat:.2f}, p = {p:.3g} -- "
           + ("they differ: the leaderboard's tests use each comparison's own seed spread, "
              "so the unstable losses (flagged) widen only their own CIs" if p < 0.05 else
              "no evidence that they differ (each comparison uses its own seed spread "
              "either way)")) if np.isfinite(p) else \
        "Bartlett's test of equal seed spreads: needs >= 2 comparisons with >= 2 seeds"
    return text + "\n" + het + "\n"


# --------------------------------------------------------------------------- simulation


@dataclass
class Scenario:
    """One simulated design (see :class:`mlbench.stats.simulate.Design`)."""

    losses: int = 4
    seeds: int = 3
    seed_sd: float | None = None  # None: 0.004, or 1.25 x the split's floor when that is more
    spread: tuple = ()
    rho: float = 0.0
    effect: float = 0.01
    effect_classes: tuple = ()
    clip: bool = False  # raise a loss's seed SD below the split's floor to the floor

    @property
    def label(self) -> str:
        k = [x for x in self.spread if x != 1]
        if len(k) > 1 or any(x < 1 for x in k):
            kind = "seed spreads " + "/".join(f"{x:.2g}" for x in self.spread)
        else:
            kind = "equal spreads" if not k else f"one loss {k[0]:g}x as unstable"
        sd = "auto" if self.seed_sd is None else f"{self.seed_sd:g}"
        return f"{self.losses} losses x {self.seeds} seeds, {kind}, rho {self.rho:g}, seed SD {sd}"


def simulate(structure: Structure, scenario: Scenario | None = None, *, replicates: int = 400,
             model=None, engine: str = "patient", rules=None, alpha: float = 0.05, rule=None,
             seed: int = 0, chunk_elements: int = 40_000_000, progress: bool = False,
             power: bool = True, on_draw=None, **kwargs) -> dict:
    """Rejection rates and CI coverage of the rules of ``simulate.RULES`` in one scenario.

    ``replicates`` null replicates (L-1 A/A comparisons each) and as many with the last loss
    better by ``scenario.effect`` (none with ``power=False``: ``power`` is NaN). Replicate
    draws come from ``numpy.random.default_rng([seed, part, block])``, so results are seeded.
    ``kwargs`` set fields of ``scenario`` (``losses=...``). ``rules``: names of
    ``simulate.RULES`` or a mapping of such rules (``simulate.evaluate_terms``). ``on_draw``:
    called as ``on_draw(part, auc, terms, truth)`` for every block of draws (part 0 null, 1
    power; ``terms`` of ``simulate.test_terms``), to keep them (``tools.seed_knobs``).

    Returns:
        dict: per rule ``type1`` (all A/A comparisons), ``type1_unstable`` / ``type1_stable``
        (comparisons of the losses with spread != 1 / == 1; NaN when none), ``fwer`` (any
        rejection after Holm in a null replicate), ``power`` (the last loss), ``coverage`` /
        ``coverage_unstable`` (per-loss 95% CI of mean AUC holds its true mean); and
        ``null_tests``, ``unstable_tests``, ``replicates``, ``sd_asked`` / ``sd_seen`` (per
        loss: seed SD asked, SD over seeds of a run's mean AUC the runs show), ``floor`` (SD
        a run's own test noise alone gives), ``se_ratio``, ``classes``, ``left_out``,
        ``params``, ``seconds``.
    """
    from mlbench.stats import SparseRule
    from mlbench.stats import simulate as sim

    scenario = scenario or Scenario()
    if kwargs:
        scenario = Scenario(**{**scenario.__dict__, **kwargs})
    if scenario.losses < 2:
        raise ValueError(f"Expected `losses` >= 2 (a reference and one more), got {scenario.losses}")
    if scenario.seeds < 2:
        raise ValueError(f"Expected `seeds` >= 2 (no test from one seed), got {scenario.seeds}")
    if replicates < 1:
        raise ValueError(f"Expected `replicates` >= 1, got {replicates}")
    if engine not in ("patient", "full"):
        raise ValueError(f"Expected `engine` to be one of ['patient', 'full'] but got {engine!r}")
    model = model or sim.ScoreModel()
    rule = rule or SparseRule()
    table = dict(rules) if isinstance(rules, dict) else None
    rules = list(rules or sim.RULES)
    unknown = [] if table else [r for r in rules if r not in sim.RULES]
    if unknown:
        raise ValueError(f"Expected rules among {list(sim.RULES)} but got {unknown}")
    classes, left = rule.check(structure.targets, structure.groups)
    if not classes:
        raise ValueError(f"{structure.name}: no class passes the rule ({rule.describe()})")
    split = sim.Split.of(structure.targets[:, classes], structure.groups, structure.name)
    n_l, n_s = scenario.losses, scenario.seeds
    spread = tuple(scenario.spread)[:n_l]
    effect_classes = tuple(scenario.effect_classes)
    eff = [0.0] * n_l
    eff[-1] = scenario.effect
    k = len(classes)
    auc_e = sim.class_aucs(sim.Design(n_l, n_s, effect=tuple(eff),
                                      effect_classes=effect_classes), model, k)[-1]
    pm = sim.patient_model(split, model, {tuple(np.round(auc_e, 12)): auc_e})
    floors = np.array([pm.floor()] * (n_l - 1) + [pm.floor(tuple(np.round(auc_e, 12)))])
    seed_sd = scenario.seed_sd
    if seed_sd is None:
        seed_sd = max(0.004, 1.25 * float(np.sqrt(floors.max())))
    if scenario.clip:  # measured spreads: none below what a run's own test noise gives
        low = float(np.sqrt(floors.max())) * 1.001 / seed_sd
        spread = tuple(max(x, low) for x in (list(spread) + [1.0] * (n_l - len(spread))))
    null = sim.Design(n_l, n_s, seed_sd, spread, scenario.rho)
    power_design = sim.Design(n_l, n_s, seed_sd, spread, scenario.rho, tuple(eff),
                              effect_classes)
    truth_null = np.array([a.mean() for a in sim.class_aucs(null, model, k)])
    truth_pow = np.array([a.mean() for a in sim.class_aucs(power_design, model, k)])
    unstable = np.array([x != 1 for x in null.spreads()[1:]])
    per = n_l * n_s * split.n_groups
    chunk = max(1, chunk_elements // per) if engine == "patient" else 8
    t0 = time.perf_counter()
    acc = {r: {"p0": [], "p1": [], "c0": []} for r in rules}
    seen = []
    parts = ((null, truth_null), (power_design, truth_pow))[: 2 if power else 1]
    for part, (design, truth) in enumerate(parts):
        done, block = 0, 0
        while done < replicates:
            r = min(chunk, replicates - done)
            rng = np.random.default_rng([seed, part, block])
            if engine == "patient":
                auc, psum = sim.draw_patient(split, model, design, r, rng, pm)
            else:
                auc, psum = sim.draw_full(split, model, design, r, rng,
                                          floors if part else floors[:1].repeat(n_l))
            terms = sim.test_terms(psum)
            if on_draw is not None:
                on_draw(part, auc, terms, truth)
            res = sim.evaluate_terms(auc, terms, truth, table or rules, alpha)
            if part == 0:
                seen.append(auc.var(axis=-1, ddof=1))
            for name in rules:
                acc[name]["p1" if part else "p0"].append(res[name]["p"])
                if part == 0:
                    acc[name]["c0"].append(res[name]["cover"])
            done += r
            block += 1
            if progress:
                print(f"  {'power' if part else 'null'}: {done}/{replicates} replicates, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    out = {"rules": rules, "null_tests": replicates * (n_l - 1),
           "unstable_tests": replicates * int(unstable.sum()), "replicates": replicates}
    for name in rules:
        p0 = np.concatenate(acc[name]["p0"])
        p1 = np.concatenate(acc[name]["p1"]) if power else np.full((1, n_l - 1), np.nan)
        c0 = np.concatenate(acc[name]["c0"])
        rej = p0 < alpha
        nan = float("nan")
        out[name] = {
            "type1": float(rej.mean()),
            "type1_unstable": float(rej[:, unstable].mean()) if unstable.any() else nan,
            "type1_stable": float(rej[:, ~unstable].mean()) if (~unstable).any() else nan,
            "fwer": float(sim.holm_any(p0, alpha).mean()),
            "power": float((p1[:, -1] < alpha).mean()) if power else nan,
            "coverage": float(c0.mean()),
            "coverage_unstable": float(c0[:, 1:][:, unstable].mean()) if unstable.any() else nan,
        }
    out["sd_asked"] = list(null.spreads() * seed_sd)
    out["sd_seen"] = list(np.sqrt(np.concatenate(seen).mean(axis=0)))
    out["floor"] = float(np.sqrt(pm.floor()))
    out["se_ratio"] = sim.se_ratio(split, model)
    out.update(classes=classes, left_out=left, seconds=time.perf_counter() - t0,
               params=dict(scenario.__dict__, replicates=replicates, engine=engine, seed=seed,
                           model=model.__dict__ if hasattr(model, "__dict__") else str(model)))
    return out


def binomial_ci(rate: float, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a rejection rate."""
    from scipy import stats as _st

    x = round(rate * n)
    lo = _st.beta.ppf(0.025, x, n - x + 1) if x > 0 else 0.0
    hi = _st.beta.ppf(0.975, x + 1, n - x) if x < n else 1.0
    return float(lo), float(hi)


def _pct(rate, n=None) -> str:
    if rate != rate:
        return "–"
    if n:
        lo, hi = binomial_ci(rate, n)
        return f"{100 * rate:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{100 * rate:.1f}%"


def report(structure: Structure, results: list[tuple[str, dict]]) -> str:
    """The calibration tables as text: one row per scenario and rule."""
    from tabulate import tabulate

    from mlbench.stats.simulate import RULES

    first = results[0][1]
    lines = [structure.describe()]
    if first["left_out"]:
        lines.append(f"classes left out: {first['left_out']}")
    lines.append(f"{len(first['classes'])} classes used; clustered / image-level SE of an A/A "
                 f"difference {first['se_ratio']:.2f}; a run's own test-set noise alone makes "
                 f"its mean AUC vary by SD {first['floor']:.4f} over seeds")
    rows = []
    for label, r in results:
        for name in r["rules"]:
            x = r[name]
            rows.append([label, name, _pct(x["type1"], r["null_tests"]),
                         _pct(x["type1_unstable"], r["unstable_tests"]),
                         _pct(x["type1_stable"]), _pct(x["fwer"]), _pct(x["power"]),
                         _pct(x["coverage"]) + (f" / {_pct(x['coverage_unstable'])}"
                                                if x["coverage_unstable"] == x["coverage_unstable"]
                                                else "")])
        asked = ", ".join(f"{a:.4f}" for a in r["sd_asked"])
        seen = ", ".join(f"{a:.4f}" for a in r["sd_seen"])
        lines.append(f"{label}: {r['replicates']} null replicates ({r['null_tests']} A/A "
                     f"comparisons, {r['unstable_tests']} of an unstable loss) + "
                     f"{r['replicates']} with the last loss +{r['params']['effect']:g}; seed SD "
                     f"of a run's mean AUC asked {asked}, seen {seen}; {r['seconds']:.0f} s")
    alpha = "5%"
    table = tabulate(rows, headers=["scenario", "rule", f"type-I at {alpha} (95% CI)",
                                    "unstable loss (95% CI)", "stable losses",
                                    "FWER after Holm", "power", "CI coverage (unstable)"],
                     tablefmt="simple", disable_numparse=True)
    legend = "\n".join(f"  {k}: {v[1]}" for k, v in RULES.items()
                       if any(k in r["rules"] for _, r in results))
    return "\n".join(lines) + "\n\n" + table + "\n\nrules:\n" + legend + "\n"


def scenarios_of(losses, seeds, seed_sds, unstable, rho, spread=None, effect=0.01,
                 effect_classes=(), clip=False) -> list[Scenario]:
    """Every combination of the lists (``spread``, when given, replaces ``unstable``)."""
    out = []
    for n_l, n_s, sd, k, r in itertools.product(losses, seeds, seed_sds,
                                                [None] if spread else unstable, rho):
        sp = tuple(spread) if spread else ((1.0, float(k)) if k and k != 1 else ())
        out.append(Scenario(n_l, n_s, sd, sp, r, effect, tuple(effect_classes), clip))
    return out


def calibrate(structure: Structure, scenarios: list[Scenario] | None = None, *,
              progress: bool = True, **kwargs) -> str:
    """Run :func:`simulate` for each scenario and return the report."""
    scenarios = scenarios or [Scenario()]
    results = []
    for sc in scenarios:
        if progress:
            print(f"{sc.label} ...", flush=True)
        results.append((sc.label, simulate(structure, sc, **kwargs)))
    return report(structure, results)


def class_indices(structure: Structure, names: list[str]) -> tuple:
    """Indices among the classes used of findings named ``names``."""
    from mlbench.data import FINDINGS
    from mlbench.stats import SparseRule

    classes, _ = SparseRule().check(structure.targets, structure.groups)
    out = []
    for name in names:
        if name not in FINDINGS:
            raise ValueError(f"Expected --effect-class among {list(FINDINGS)} but got {name!r}")
        c = FINDINGS.index(name)
        if c not in classes:
            raise ValueError(f"--effect-class {name}: left out of the means on this split")
        out.append(classes.index(c))
    return tuple(out)
