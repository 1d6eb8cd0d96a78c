"""``python -m mlbench plan SUITE``: the design table of a suite before any training (issue 25).

Per comparison family of the suite (its primary contrasts, one Holm family; the other
comparisons with the reference, exploratory; or, without ``analysis.primary``, every
comparison of the table as the leaderboard adjusts them): the comparisons m, the SE of Δ,
the minimal detectable effect (MDE) at 80% power after Holm over m, the power at
``--effect``, the seeds that effect needs and the GPU-hours implied. The numbers come from
:mod:`mlbench.stats.design` on the test split's real structure (labels and patients: a
results folder's stored split, the dataset's official test split, an official
``test_list.txt`` in the real label table, or the CXR14-sim split the suite writes) and a seed
SD (measured in a results folder, or ``--seed-sd``); epoch times from a results folder's
stored epochs, or ``--epoch-hours``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_SEEDS = 32  # plan looks for the seeds an effect needs up to this many


@dataclass
class Family:
    """One Holm family of a suite: m comparisons in blocks of ``losses`` losses; ``cells``
    the (backbone, head, loss) cells whose seeds the family's comparisons use; ``matched``
    each comparison's matched seeds (the seeds both cells have, ``seeds.cells``)."""

    name: str
    m: int
    losses: int
    cells: set = field(default_factory=set)
    matched: list = field(default_factory=list)

    @property
    def seeds(self) -> int:
        """The family's seeds: its comparisons' fewest matched seeds (what it is simulated
        with; a family whose comparisons differ is planned for its weakest)."""
        return min(self.matched, default=0)

    @property
    def seeds_text(self) -> str:
        lo, hi = self.seeds, max(self.matched, default=0)
        return str(lo) if lo == hi else f"{lo}-{hi}"


def families(suite) -> list[Family]:
    """The suite's comparison families (the leaderboard's: :mod:`.primary`)."""
    from mlbench.leaderboard.analysis import loss_key
    from mlbench.suite import CHANCE, loss_label, normalise_loss, parse_contrasts
    from mlbench.suite.schema import as_list

    cfg = suite.config
    per_cell = suite.seeds
    losses = [loss_key(loss_label(normalise_loss(s, "grid.loss")))
              for s in as_list(cfg["grid"]["loss"])]
    ref = loss_key(cfg["eval"]["reference"])
    blocks = [(str(b), str(h)) for b in as_list(cfg["grid"]["backbone"])
              for h in as_list(cfg["grid"]["head"])]

    def matched(b, h, a, other) -> int:
        mine = per_cell.of(b, h, a)
        return len(mine) if other == CHANCE else len(set(mine) & set(per_cell.of(b, h, other)))

    others = [x for x in losses if x != ref]
    every = {(b, h, x) for b, h in blocks for x in others}
    contrasts = parse_contrasts((cfg.get("analysis") or {}).get("primary") or [])
    if not contrasts:
        return [Family("all comparisons", len(every), len(losses),
                       {(b, h, x) for b, h in blocks for x in losses},
                       [matched(b, h, x, ref) for b, h, x in sorted(every)])]
    prim, prim_rows, cells, seen = 0, set(), set(), []
    for c in contrasts:
        for b, h in blocks:
            if c.applies(b, h):
                prim += 1
                cells |= {(b, h, c.a)} | ({(b, h, c.b)} if c.b != CHANCE else set())
                seen.append(matched(b, h, c.a, c.b))
                if c.b == ref:
                    prim_rows.add((b, h, c.a))
    out = [Family("primary", prim, len(losses), cells, seen)]
    rest = every - prim_rows
    if rest:
        out.append(Family("exploratory", len(rest), len(losses),
                          {(b, h, x) for b, h in blocks for x in losses},
                          [matched(b, h, x, ref) for b, h, x in sorted(rest)]))
    return out


def runs_at(suite, seeds: int | None = None, cells: set | None = None) -> int:
    """Runs of the suite, each cell on its own seeds (``seeds.cells``); with ``seeds``, the
    cells of ``cells`` (default every cell) on that many instead (a cell that ``seeds.cells``
    gives more keeps them: another family needs them). Tuned cells run their settings on the
    first seed (``stages: 2``) or on every seed."""
    from mlbench.leaderboard.analysis import loss_key
    from mlbench.suite import loss_label, normalise_loss
    from mlbench.suite.schema import as_list

    cfg = suite.config
    per_cell = suite.seeds
    default = len(per_cell.default)

    def count(key, own: int) -> int:
        if seeds is None or not (cells is None or key in cells):
            return own
        return max(own, seeds) if own != default else seeds

    plan = suite.plan
    total = 0
    if plan is None:
        for b in as_list(cfg["grid"]["backbone"]):
            for h in as_list(cfg["grid"]["head"]):
                for spec in as_list(cfg["grid"]["loss"]):
                    label = loss_label(normalise_loss(spec, "grid.loss"))
                    key = (str(b), str(h), loss_key(label))
                    total += count(key, len(per_cell.of(b, h, label)))
        return total
    for c in plan.cells:
        s = count(c.key, len(c.seeds))
        n = len(c.settings)
        total += n * s if plan.stages == 1 else n + s - 1
    return total


def epoch_hours(out: str | Path) -> dict:
    """Measured hours per epoch (training + validation) in a results folder: {backbone:
    median over its stored epochs}, and "all"."""
    from mlbench.db import ResultsDB

    path = Path(out)
    got: dict = {}
    with ResultsDB(path if path.suffix == ".db" else path / "results.db", readonly=True) as db:
        for run in db.runs("finished"):
            for e in db.epochs(run["id"]):
                t = (e.get("train_time") or 0.0) + (e.get("eval_time") or 0.0)
                if t > 0:
                    got.setdefault(run["backbone"], []).append(t / 3600)
    out_ = {k: float(np.median(v)) for k, v in got.items()}
    if got:
        out_["all"] = float(np.median([x for v in got.values() for x in v]))
    return out_


def structure_of(suite, results: str | None = None, test_list: str | None = None):
    """The test split's structure: a results folder's, the suite's dataset (official test
    split of a readable root, or the CXR14-sim split it writes), or ``test_list`` rows of the
    real label table. Returns (Structure, info from the results or {})."""
    from mlbench.leaderboard import calibrate as cal

    if results:
        return cal.results_structure(results)
    if test_list:
        return cal.real_test_structure(test_list), {}
    ds = suite.dataset
    if ds.get("sim"):
        knobs = {k: v for k, v in ds["sim"].items() if k in ("test_fraction", "sick_preference")}
        return cal.sim_test_structure(ds["sim"]["images"], ds["sim"]["seed"], **knobs), {}
    root = Path(ds["root"])
    if (root / "Data_Entry_2017.csv").exists() or (root / "test_list.txt").exists():
        return cal.dataset_structure(root), {}
    raise ValueError(f"dataset.root {root} is not readable here: give --test-list FILE (the "
                     "official test_list.txt; its rows of the real label table are used) or "
                     "--results OUT")


def plan_table(suite, structure, seed_sd: float, *, effect: float = 0.005,
               epoch_h: float | dict | None = None, replicates: int = 400, seed: int = 0,
               rho: float = 0.0, alpha: float = 0.05, model=None, max_seeds: int = MAX_SEEDS,
               progress: bool = False) -> list[dict]:
    """One row per family (module doc)."""
    from mlbench.stats import SparseRule
    from mlbench.stats import design as dz
    from mlbench.stats import simulate as sim

    model = model or sim.ScoreModel()
    classes, _ = SparseRule().check(structure.targets, structure.groups)
    if not classes:
        raise ValueError(f"{structure.name}: no class passes the sparse-class rule")
    split = sim.Split.of(structure.targets[:, classes], structure.groups, structure.name)
    pm = sim.patient_model(split, model)
    floor = math.sqrt(pm.floor())
    if seed_sd < floor:
        raise ValueError(f"seed SD {seed_sd:g} is below {floor:.4g}, what a run's own test-set "
                         "noise alone gives on this split: give a larger --seed-sd")
    epochs = suite.config["train"].get("epochs", 1) if isinstance(suite.config["train"], dict) \
        else 1
    rows = []
    for fam in families(suite):
        s0 = fam.seeds
        if progress:
            print(f"  {fam.name}: m = {fam.m}, {fam.losses} losses x {fam.seeds_text} seeds ...",
                  flush=True)
        row = {"family": fam.name, "comparisons": fam.m, "losses": fam.losses, "seeds": s0,
               "seeds_text": fam.seeds_text,
               "se": dz.true_se(pm, seed_sd, s0, rho) if s0 >= 2 else math.nan,
               "se_limit": math.sqrt(2 * pm.vu.sum())}
        if s0 >= 2 and fam.losses >= 2:
            d = dz.draw(split, model, fam.losses, s0, seed_sd, replicates,
                        np.random.default_rng([seed, 3, s0]), rho, pm)
            row["mde"] = dz.mde(d, fam.m, alpha)
            row["power"] = dz.power(d, effect, fam.m, alpha)
        else:
            row["mde"], row["power"] = math.nan, 0.0
        need, pw = dz.seeds_needed(split, model, fam.losses, seed_sd, effect, fam.m,
                                   replicates, seed, rho, alpha, max_seeds, pm)
        row.update(effect=effect, seeds_needed=need, power_needed=pw, max_seeds=max_seeds,
                   se_needed=dz.true_se(pm, seed_sd, need, rho) if need else math.nan,
                   runs=runs_at(suite),
                   runs_needed=runs_at(suite, need, fam.cells) if need else None)
        h = _hours(epoch_h, suite)
        row["gpu_hours"] = row["runs"] * epochs * h if h else math.nan
        row["gpu_hours_needed"] = (_hours_at(suite, need, fam.cells, epoch_h, epochs)
                                   if need and h else math.nan)
        rows.append(row)
    return rows


def _hours(epoch_h, suite) -> float | None:
    """Mean hours per epoch over the suite's runs."""
    if epoch_h is None:
        return None
    if isinstance(epoch_h, dict):
        from mlbench.suite.schema import as_list

        per = [epoch_h.get(str(b), epoch_h.get("all")) for b in as_list(
            suite.config["grid"]["backbone"])]
        per = [x for x in per if x]
        return float(np.mean(per)) if per else None
    return float(epoch_h)


def _hours_at(suite, seeds, cells, epoch_h, epochs) -> float:
    if not isinstance(epoch_h, dict):
        return runs_at(suite, seeds, cells) * epochs * float(epoch_h)
    from mlbench.suite.schema import as_list

    total = 0.0
    for b in as_list(suite.config["grid"]["backbone"]):
        sub = {c for c in cells if c[0] == str(b)}
        h = epoch_h.get(str(b), epoch_h.get("all"))
        total += (runs_at(suite, seeds, sub) - runs_at(suite)) * epochs * h
    base = runs_at(suite) * epochs * _hours(epoch_h, suite)
    return base + total


def render_plan(rows: list[dict], header: list[str]) -> str:
    """The design table as text."""
    from tabulate import tabulate

    def f(x, fmt):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    table = [[r["family"], r["comparisons"], f"{r['losses']} x {r.get('seeds_text', r['seeds'])}",
              f(r["se"], ".4f"),
              f(r["se_limit"], ".4f"),
              f(r["mde"], ".4f") or "> 0.3", f"{100 * r['power']:.0f}%",
              (str(r["seeds_needed"]) if r["seeds_needed"] else
               "never (SE floor)" if r["power_needed"] == 0 else
               f"> {r.get('max_seeds', MAX_SEEDS)} ({100 * r['power_needed']:.0f}%)"),
              f(r["se_needed"], ".4f"), r["runs"], f(r["gpu_hours"], ".0f"),
              r["runs_needed"] or "", f(r["gpu_hours_needed"], ".0f")] for r in rows]
    eff = rows[0]["effect"] if rows else 0
    text = tabulate(table, headers=[
        "family", "m", "losses x seeds", "SE of Δ", "SE, ∞ seeds", "MDE (80%, Holm)", f"power at +{eff:g}",
        f"seeds for +{eff:g}", "SE then", "runs", "GPU-h", "runs then", "GPU-h then"],
        disable_numparse=True)
    return "\n".join(header) + "\n\n" + text + "\n"
