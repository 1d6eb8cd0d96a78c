"""Primary contrasts of a suite (``analysis.primary``, issue 25) on the leaderboard's blocks.

Each contrast ``A vs B`` is computed in every block (backbone, head, setup) it applies to and
that holds both losses, on the seeds both have, as the leaderboard's comparison
(:func:`mlbench.stats.compare`): B the reference uses the row's seed term; another B the
seed variance of its own paired differences (:func:`mlbench.stats.seed_terms`, with its
outlier p among the block's comparisons). The primary contrasts form one Holm family and
each gets a verdict (:mod:`mlbench.stats.verdicts`); every other comparison of the table is
exploratory, Holm-adjusted in its own family. ``A vs chance``: Δ = A's mean AUC - 0.5, from
the CI of its mean (:func:`mlbench.stats.mean_ci`, its own seed term over the block's
losses). A contrast named in ``analysis.expect`` (a control) gets ``expected`` (its acceptable
verdicts) and ``as_expected`` (the observed verdict among them).
"""

from __future__ import annotations

import numpy as np

from mlbench.stats import compare, group_index, mean_ci, seed_terms
from mlbench.stats.verdicts import family_verdicts
from mlbench.suite import CHANCE, expectations, parse_contrasts

PRIMARY, EXPLORATORY = "primary", "exploratory"


def contrasts_of(analysis: dict | None) -> list:
    """The parsed contrasts of an ``analysis`` section (stored with the results)."""
    return parse_contrasts((analysis or {}).get("primary") or [])


def evaluate(blocks, analysis: dict | None, reference: str, alpha: float = 0.05,
             many_setups: bool = False) -> list[dict]:
    """One row per (contrast, block): Δ, CI, p, Holm over the family, p_equiv, p_noninf,
    verdict. Empty without primary contrasts."""
    contrasts = contrasts_of(analysis)
    margin = (analysis or {}).get("margin")
    rows = []
    for block in blocks:
        backbone, head, setup = block.key
        if not block.classes:
            continue
        terms = None
        for c in contrasts:
            if not c.applies(backbone, head):
                continue
            sa, sb = block.stats.get(c.a, {}), block.stats.get(c.b, {})
            matched = [s for s in sorted(sa) if s in sb or c.b == CHANCE]
            row = {"backbone": backbone, "head": head, "contrast": c.label, "loss": c.a,
                   "versus": c.b, "matched": len(matched), "margin": margin}
            if many_setups:
                row["setup"] = setup
            if not matched:
                row.update(delta=np.nan, delta_lo=np.nan, delta_hi=np.nan, p=np.nan,
                           se=np.nan, df=np.nan, seed_term="not both in this setup")
                rows.append(row)
                continue
            terms = terms or block.seed_terms(reference)
            gi, ng = group_index(block.groups)
            kw = dict(alpha=alpha, classes=block.classes, left_out=block.left_out)
            if c.b == CHANCE:  # A's mean AUC against 0.5: the CI of its mean, shifted
                r = mean_ci([sa[s] for s in matched], gi, ng, seed=terms["mean"].get(c.a), **kw)
                row.update(delta=r.delta - 0.5, delta_lo=r.ci_lo - 0.5, delta_hi=r.ci_hi - 0.5,
                           p=r.p_value, se=r.se, df=r.df, seed_term=r.seed_term)
                rows.append(row)
                continue
            seed = _seed_term(block, terms, c, matched, reference)
            r = compare([sa[s] for s in matched], [sb[s] for s in matched], gi, ng,
                        seed=seed, **kw)
            row.update(delta=r.delta, delta_lo=r.ci_lo, delta_hi=r.ci_hi, p=r.p_value,
                       se=r.se, df=r.df, seed_term=r.seed_term)
            rows.append(row)
    if rows:
        v = family_verdicts([r["delta"] for r in rows], [r["se"] for r in rows],
                            [r["df"] for r in rows], [r["p"] for r in rows], margin, alpha)
        for k, row in enumerate(rows):
            row.update(p_holm=float(v["p_holm"][k]), p_noninf=float(v["p_noninf"][k]),
                       p_equiv=float(v["p_equiv"][k]), verdict=str(v["verdict"][k]),
                       family=PRIMARY, significant=bool(v["p_holm"][k] < alpha))
    expect = expectations(analysis, {c.label for c in contrasts})
    for row in rows:
        want = expect.get(row["contrast"])
        if want is not None:
            row["expected"] = " or ".join(want)
            row["as_expected"] = row.get("verdict") in want
    return rows


def _seed_term(block, terms: dict, c, matched: list, reference: str):
    """The contrast's seed term: the row's when B is the reference, else that of its own
    paired differences (outlier p against the block's comparisons with the reference)."""
    if c.b == reference and c.a in terms["diff"]:
        return terms["diff"][c.a]
    sa, sb = block.stats[c.a], block.stats[c.b]
    own = np.array([sa[s].mean_auc - sb[s].mean_auc for s in matched])
    ref = block.stats.get(reference, {})
    others = []
    for loss in terms["diff"]:
        if loss in (c.a, c.b):
            continue
        seeds = [s for s in sorted(block.stats[loss]) if s in ref]
        others.append(np.array([block.stats[loss][s].mean_auc - ref[s].mean_auc for s in seeds]))
    return seed_terms([own] + others)[0]


def family_of(rows: list[dict], key: tuple, loss: str, reference: str) -> str:
    """A leaderboard row's family: primary when it is the comparison of a primary contrast
    (``loss vs reference`` in that block), else exploratory ('' without primary contrasts)."""
    if not rows or loss == reference:
        return ""
    for r in rows:
        if (r["backbone"], r["head"]) == key[:2] and r.get("setup", key[2]) == key[2] \
                and r["loss"] == loss and r["versus"] == reference:
            return PRIMARY
    return EXPLORATORY


def primary_row(rows: list[dict], row: dict, reference: str) -> dict | None:
    """The primary-contrast row matching a leaderboard row (its loss vs the reference)."""
    for r in rows:
        if (r["backbone"], r["head"]) == (row["backbone"], row["head"]) \
                and r.get("setup") == row.get("setup") and r["loss"] == row["loss"] \
                and r["versus"] == reference:
            return r
    return None


def adjust(df, rows: list[dict], reference: str, alpha: float = 0.05):
    """p Holm per family: primary rows take their contrast's (Holm over the primary family);
    the rest are Holm-adjusted among themselves. Adds ``verdict``, ``p_equiv``, ``p_noninf``,
    ``margin`` on the primary rows."""
    from mlbench.stats import holm

    fam = df["family"].to_numpy()
    explo = fam != PRIMARY
    p = df["p"].to_numpy(dtype=float)
    adj = np.full(len(df), np.nan)
    adj[explo] = holm(p[explo])
    for name in ("verdict", "p_equiv", "p_noninf", "margin"):
        df[name] = None if name == "verdict" else np.nan
    df["verdict"] = df["verdict"].astype(object)
    for i in np.flatnonzero(~explo):
        r = primary_row(rows, df.iloc[i].to_dict(), reference)
        if r is None:
            continue
        adj[i] = r["p_holm"]
        df.at[i, "verdict"] = r["verdict"]
        df.at[i, "p_equiv"] = r["p_equiv"]
        df.at[i, "p_noninf"] = r["p_noninf"]
        df.at[i, "margin"] = np.nan if r["margin"] is None else r["margin"]
    df["p_holm"] = adj
    df["significant"] = df["p_holm"] < alpha
    return df


P_BEST_NOTE = (
    "P(best): share of parametric draws in which the loss has the setup's highest mean AUC, "
    "E[rank] its mean rank (1 = best); draws from each loss's own seed term (its df "
    "carried by a chi-square draw) and the test-set covariance the losses share (patient "
    "sums of influence values), seed effects of one seed taken as independent between losses "
    "(mlbench.stats.best; calibration in docs/HARNESS.md).")


def add_p_best(block, rows: list[dict], terms: dict) -> None:
    """``p_best`` / ``exp_rank`` on a block's rows: the losses with >= 2 seeds
    (:func:`mlbench.stats.best.p_best`)."""
    from mlbench.stats.best import p_best, patient_sums, test_cov

    losses = [r["loss"] for r in rows if r["seeds"] >= 2 and r["loss"] in terms["mean"]
              and np.isfinite(terms["mean"][r["loss"]].var)]
    if len(losses) < 2 or block.groups is None:
        return
    gi, ng = group_index(block.groups)
    psum = [patient_sums(np.stack([block.stats[x][s].psi for s in sorted(block.stats[x])]),
                         gi, ng) for x in losses]
    means = [np.mean([r.mean_auc for r in block.stats[x].values()]) for x in losses]
    pb, rank = p_best(means, [terms["mean"][x].var for x in losses],
                      [terms["mean"][x].df for x in losses],
                      [len(block.stats[x]) for x in losses], test_cov(psum),
                      rng=np.random.default_rng(0))
    got = dict(zip(losses, zip(pb, rank, strict=True), strict=True))
    for r in rows:
        r["p_best"], r["exp_rank"] = (float(v) for v in got.get(r["loss"], (np.nan, np.nan)))
