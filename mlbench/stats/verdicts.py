"""Verdicts of a family of primary contrasts (issue 25): better / worse / equivalent within
±margin / non-inferior / inconclusive, from each contrast's Δ, SE and df (the leaderboard's
comparison, :mod:`mlbench.stats.compare`), Holm-adjusted over the family.

Per contrast, with T ~ Student t on the comparison's df::

    p_diff   = 2 P(T > |Δ| / se)                       two-sided, Δ = 0
    p_noninf = P(T > (Δ + m) / se)                     one-sided, Δ <= -m (non-inferiority)
    p_equiv  = max(P(T > (Δ + m) / se), P(T > (m - Δ) / se))   two one-sided tests (TOST)

each Holm-adjusted over the family's contrasts (its own kind). Verdict, first that holds:
``better`` / ``worse`` (p_diff Holm < alpha, by the sign of Δ), ``equivalent`` (p_equiv Holm
< alpha: the contrast's (1 - 2 alpha') CI lies inside ±m, alpha' its Holm level),
``non-inferior`` (p_noninf Holm < alpha: its one-sided lower bound is above -m),
``inconclusive``; ``no test`` with fewer than 2 matched seeds (no seed term, issue 30).
Without a margin only better / worse / inconclusive are possible.
"""

from __future__ import annotations

import numpy as np

from mlbench.stats.compare import holm

VERDICTS = ("better", "worse", "equivalent", "non-inferior", "inconclusive", "no test")


def one_sided(delta, se, df, margin) -> tuple[np.ndarray, np.ndarray]:
    """(p_noninf, p_equiv) of Δ against ±margin (NaN where se is NaN or no margin)."""
    from scipy import stats as _st

    delta, se, df = (np.asarray(x, dtype=np.float64) for x in (delta, se, df))
    if margin is None or not np.isfinite(margin) or margin <= 0:
        nan = np.full(delta.shape, np.nan)
        return nan, nan
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = _st.t.sf((delta + margin) / se, df)  # H0: Δ <= -m
        upper = _st.t.sf((margin - delta) / se, df)  # H0: Δ >= +m
    ok = np.isfinite(se) & (se > 0)
    return np.where(ok, lower, np.nan), np.where(ok, np.maximum(lower, upper), np.nan)


def family_verdicts(delta, se, df, p, margin=None, alpha: float = 0.05) -> dict:
    """Verdicts of one family of contrasts.

    Args:
        delta, se, df, p: (n,) each contrast's Δ, SE, df and two-sided p (NaN: no test).
        margin: equivalence margin in mean AUC (None: no equivalence verdicts).

    Returns:
        dict of (n,) arrays: ``p_holm``, ``p_noninf`` / ``p_equiv`` (Holm-adjusted, NaN
        without a margin), ``verdict`` (strings of :data:`VERDICTS`).
    """
    delta = np.asarray(delta, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    ph = holm(p)
    ni, eq = one_sided(delta, se, df, margin)
    ni_h, eq_h = holm(ni), holm(eq)
    out = []
    for k in range(len(delta)):
        if not np.isfinite(p[k]):
            out.append("no test")
        elif ph[k] < alpha:
            out.append("better" if delta[k] > 0 else "worse")
        elif np.isfinite(eq_h[k]) and eq_h[k] < alpha:
            out.append("equivalent")
        elif np.isfinite(ni_h[k]) and ni_h[k] < alpha:
            out.append("non-inferior")
        else:
            out.append("inconclusive")
    return {"p_holm": ph, "p_noninf": ni_h, "p_equiv": eq_h, "verdict": np.array(out, dtype=object)}
