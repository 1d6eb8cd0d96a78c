"""The leaderboard per named test set (``eval.test_sets``): one block per test set with the
same statistics as the run's own test split (seeds x patient clusters, masked labels skipped
per class: :func:`analysis.build` on the store seen through the test set,
``ResultsDB.for_test_set``), the loss ranking's transfer between test sets per setup
(Kendall's tau with its interval over seeds and patients, :func:`mlbench.stats.transfer.
ranking_agreement`, and a one-line verdict), and Δ vs the reference per test set side by
side. A results folder with only its own test split (``nih``) shows as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlbench.leaderboard.analysis import analyse, build, loss_key
from mlbench.stats import RankingAgreement, ScoredTestSet, ranking_agreement

OWN = "nih"
TRANSFER_BOOT = 500  # bootstrap replicates of Kendall's tau (seeds x patients)


@dataclass
class TestSetBoard:
    """One test set's leaderboard: its name, what the output states about it, the frame."""

    __test__ = False

    name: str
    info: dict
    frame: pd.DataFrame
    blocks: list = field(default_factory=list)

    def header(self) -> list[str]:
        """The lines stated above its table: size, source, label map, policy, notes."""
        i = self.info
        if not i:
            return [f"test set {self.name}"]
        lines = [f"test set {self.name}: {i.get('images', 0):,} images of "
                 f"{i.get('patients', 0):,} patients; source: {i.get('source', '')}"]
        rules = i.get("label_map") or []
        same = all(" <- " in r and r.split(" <- ")[0] == r.split(" <- ")[1] for r in rules)
        lines += ["  label map: each finding scored by the model output of its name"] if same \
            else [f"  {r}" for r in rules]
        if i.get("policy"):
            lines.append(f"  labels: {i['policy']}")
        return lines + [f"  note: {x}" for x in i.get("notes") or []]


def names(db) -> list[str]:
    """Test sets with stored scores: ``nih`` (the runs' own test split) first, then the
    others in the suite's order (those scored, in the order scored, when none is stored)."""
    scored = list(db.scored_test_sets())
    listed = [n for n in (db.get_meta("test_sets") or []) if n in scored]
    return [OWN, *listed, *(n for n in scored if n not in listed)]


def boards(db, reference: str, per_class: bool = True, analysis: dict | None = None,
           own: pd.DataFrame | None = None, strata: bool = True) -> list[TestSetBoard]:
    """One :class:`TestSetBoard` per test set (``own``: the own split's frame, if built;
    ``strata``: as :func:`analysis.build`)."""
    out = []
    for name in names(db):
        if name == OWN:
            df = own if own is not None else build(db, reference, per_class, analysis=analysis,
                                                   strata=strata)
            info = (db.get_meta("test_set_info") or {}).get(OWN, {})
            out.append(TestSetBoard(OWN, info, df, analyse(db)[0]))
            continue
        view = db.for_test_set(name)
        df = build(view, reference, per_class, published=False, analysis=analysis,
                   strata=strata)
        out.append(TestSetBoard(name, view.info(), df, analyse(view)[0]))
    return out


def _scored(db, name: str, block, losses: list[str], seeds: list) -> ScoredTestSet:
    src = db if name == OWN else db.for_test_set(name)
    scores = np.stack([np.stack([src.predictions(block.runs[loss][s]["id"])[0] for s in seeds])
                       for loss in losses])
    return ScoredTestSet(scores=scores, targets=block.targets, groups=block.groups,
                         mask=block.mask, classes=list(block.classes))


def transfer(db, tables: list[TestSetBoard], n_boot: int = TRANSFER_BOOT,
             seed: int = 0) -> list[dict]:
    """Per setup and pair of test sets (``nih`` vs each other first, then the others'
    pairs): Kendall's tau between the loss orderings on both (the losses with every common
    seed on both), with its interval and verdict. Rows: backbone, head, setup, a, b, losses,
    seeds, tau, ci_lo, ci_hi, verdict, line; a pair that cannot be ranked (fewer than 2
    losses or 2 common seeds, no class kept) says why in ``line``."""
    rows = []
    for i, first in enumerate(tables):
        mine = {b.key: b for b in first.blocks}
        for other in tables[i + 1:]:
            for block in other.blocks:
                if block.key in mine:
                    rows.append(_agreement(db, first.name, mine[block.key], other.name, block,
                                           n_boot, seed))
    return rows


def _agreement(db, name_a: str, a, name_b: str, b, n_boot: int, seed: int) -> dict:
    row = {"backbone": a.key[0], "head": a.key[1], "setup": a.key[2], "a": name_a,
           "b": name_b, "losses": 0, "seeds": 0, "tau": math.nan, "ci_lo": math.nan,
           "ci_hi": math.nan, "verdict": "", "line": ""}
    if not a.classes or not b.classes:
        row["line"] = (f"{name_a} vs {name_b}: no class passes the sparse-class rule on one "
                       "of them: not ranked")
        return row
    losses = [x for x in a.stats if x in b.stats]
    seeds = sorted(set.intersection(*(set(a.stats[x]) & set(b.stats[x]) for x in losses))) \
        if losses else []
    row.update(losses=len(losses), seeds=len(seeds))
    if len(losses) < 2 or len(seeds) < 2:
        row["line"] = (f"{name_a} vs {name_b}: {len(losses)} losses with {len(seeds)} common "
                       "seeds on both: not ranked (needs 2 losses x 2 seeds)")
        return row
    agree: RankingAgreement = ranking_agreement(
        _scored(db, name_a, a, losses, seeds), _scored(db, name_b, b, losses, seeds),
        n_boot=n_boot, seed=seed)
    row.update(tau=agree.tau, ci_lo=agree.ci_lo, ci_hi=agree.ci_hi, verdict=agree.verdict,
               line=f"{name_a} vs {name_b}: {agree.line()}")
    return row


def transfer_frame(rows: list[dict], many_setups: bool) -> pd.DataFrame:
    """The transfer rows as a display table."""
    out = []
    for r in rows:
        where = " / ".join([r["backbone"], r["head"]] + ([r["setup"]] if many_setups else []))
        out.append({"setup": where, "test sets": f"{r['a']} vs {r['b']}",
                    "losses x seeds": f"{r['losses']} x {r['seeds']}",
                    "Kendall tau [95% CI]": "" if math.isnan(r["tau"]) else
                    f"{r['tau']:+.2f} [{r['ci_lo']:+.2f}, {r['ci_hi']:+.2f}]",
                    "verdict": r["verdict"] or r["line"]})
    return pd.DataFrame(out)


def delta_frame(tables: list[TestSetBoard], reference: str) -> pd.DataFrame:
    """Δ vs the reference [95% CI] per (backbone, head, loss), one column per test set."""
    reference = loss_key(reference)
    cols: dict = {}
    for t in tables:
        df = t.frame
        if df.empty:
            continue
        for r in df.to_dict(orient="records"):
            if not r.get("seeds"):
                continue
            key = (r["backbone"], r["head"], r["loss"]) + ((r["setup"],) if "setup" in r and
                                                           isinstance(r["setup"], str) else ())
            d, lo, hi = r.get("delta", math.nan), r.get("delta_lo", math.nan), \
                r.get("delta_hi", math.nan)
            if r["loss"] == reference:
                text = "ref"
            elif d is None or (isinstance(d, float) and math.isnan(d)):
                text = ""
            else:
                text = f"{d:+.4f}" + ("" if lo is None or math.isnan(lo) else
                                      f" [{lo:+.4f}, {hi:+.4f}]") + \
                    (" *" if r.get("significant") is True else "")
            cols.setdefault(key, {})[t.name] = text
    rows = []
    for key, by in cols.items():
        row = {"backbone": key[0], "head": key[1], "loss": key[2]}
        if len(key) > 3:
            row["setup"] = key[3]
        row.update({f"Δ {t.name}": by.get(t.name, "") for t in tables})
        rows.append(row)
    return pd.DataFrame(rows)
