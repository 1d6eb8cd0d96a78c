"""The leaderboard table: ``python -m mlbench leaderboard OUT`` as text, Markdown, CSV or HTML.

Per (backbone, head, loss), over its finished seeds (numbers: :func:`analysis.build`):
seeds (marked incomplete when fewer than its cell's seeds in the suite), mean test AUC ± SD over
seeds, its 95% CI, Δ vs the reference loss with its 95% CI, the raw and the Holm-adjusted
p-value (significance marked on the adjusted one), mAP, label ranking average precision,
ranking loss, cost (train time relative to the reference), per-class AUC. The footnote says
what the CIs and p mean (seeds + patient-clustered test set, SPEC §5.1), which classes the
means use and why the others are left out.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from mlbench.leaderboard.render import FORMATS, titled_tables

# Light on purpose: the leaderboard's face imports this module, and the command line reads
# FORMATS through it without numpy, pandas or the statistics; those load with the first
# table (``analysis``).

__all__ = ["display_frame", "finding_columns", "footnote", "leaderboard", "leaderboard_frame",
           "render", "short_name"]

NUMBER_COLUMNS = ("backbone", "head", "loss", "setup", "seeds", "failed", "incomplete",
                  "mean_auc", "std", "ci_lo", "ci_hi", "delta", "delta_lo", "delta_hi", "p",
                  "df", "seed_term", "map", "lrap", "ranking_loss", "cost", "left_out",
                  "p_holm", "significant", "setting", "budget", "val_auc", "matched",
                  "sd_delta", "df_test", "seed_p", "unstable", "family", "verdict", "p_equiv",
                  "p_noninf", "margin", "p_best", "exp_rank")


def short_name(finding: str, others: list[str] | tuple[str, ...] = ()) -> str:
    """Column label of a finding: its first four letters (``Pleural_Thickening`` -> ``Pleu``),
    more where another of ``others`` shares them (``Pneumonia`` / ``Pneumothorax`` ->
    ``Pneumon`` / ``Pneumot``), so that no two columns get one label."""
    text = finding.replace("_", " ")
    rest = [o.replace("_", " ") for o in others if o != finding]
    n = 4
    while n < len(text) and any(o[:n] == text[:n] for o in rest):
        n += 1
    return text[:n]


def finding_columns(df) -> list[str]:
    """The per-class AUC columns of a ``build`` frame."""
    return [c for c in df.columns if c not in NUMBER_COLUMNS]


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt(x, digits=4, signed=False) -> str:
    if _isnan(x):
        return ""
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if _isnan(p):
        return ""
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _col(df, name: str, default=math.nan) -> list:
    return list(df[name]) if name in df.columns else [default] * len(df)


def display_frame(df, reference: str = "bce"):
    """Human-readable columns: ``0.8123 ± 0.0041``, ``[0.80, 0.82]``, Δ [CI], p, per-class."""
    import pandas as pd

    from mlbench.leaderboard.analysis import loss_key

    if df.empty:
        return df
    reference = loss_key(reference)
    findings = finding_columns(df)
    out = pd.DataFrame({"backbone": df["backbone"], "head": df["head"], "loss": df["loss"]})
    seeds = []
    for n, f, inc in zip(df["seeds"], _col(df, "failed", 0), _col(df, "incomplete", False),
                         strict=True):
        text = str(int(n)) + (" incomplete" if inc is True else "")
        seeds.append(text + (f" ({int(f)} failed)" if not _isnan(f) and f else ""))
    out["seeds"] = seeds
    if "setup" in df.columns:
        out["setup"] = df["setup"].fillna("")
    if "setting" in df.columns:  # tuned: chosen values, budget, selection score
        out["setting"] = df["setting"].fillna("")
        out["budget"] = df["budget"].fillna("")
        out["val AUC"] = [_fmt(v) for v in df["val_auc"]]
    out["mean AUC ± sd"] = [_fmt(m) + ("" if _isnan(s) else f" ± {s:.4f}")
                            + (" †" if u is True else "")
                            for m, s, u in zip(df["mean_auc"], _col(df, "std"),
                                               _col(df, "unstable", False), strict=True)]
    out["95% CI"] = [f"[{lo:.3f}, {hi:.3f}]" if not (_isnan(lo) or _isnan(hi)) else ""
                     for lo, hi in zip(_col(df, "ci_lo"), _col(df, "ci_hi"), strict=True)]
    deltas = []
    for loss, n, d, lo, hi in zip(df["loss"], df["seeds"], _col(df, "delta"),
                                  _col(df, "delta_lo"), _col(df, "delta_hi"), strict=True):
        if loss == reference and n:
            deltas.append("ref")
        elif not _isnan(d) and _isnan(lo):
            deltas.append(_fmt(d, signed=True) + " (no CI: 1 seed)")
        else:
            deltas.append(_fmt(d, signed=True)
                          + ("" if _isnan(lo) else f" [{lo:+.4f}, {hi:+.4f}]"))
    out[f"Δ vs {reference} [95% CI]"] = deltas
    out["p"] = [_fmt_p(p) for p in _col(df, "p")]
    out["p Holm"] = [_fmt_p(p) + (" *" if s is True else "")
                     for p, s in zip(_col(df, "p_holm"), _col(df, "significant", False),
                                     strict=True)]
    if "family" in df.columns:  # primary contrasts: their own Holm family, with a verdict
        out["family"] = [f if isinstance(f, str) else "" for f in df["family"]]
        out["verdict"] = [v if isinstance(v, str) else "" for v in _col(df, "verdict", "")]
    if "p_best" in df.columns:
        out["P(best)"] = [_fmt(x, 2) for x in df["p_best"]]
        out["E[rank]"] = [_fmt(x, 1) for x in _col(df, "exp_rank")]
    out["mAP"] = [_fmt(x) for x in _col(df, "map")]
    out["LRAP"] = [_fmt(x) for x in _col(df, "lrap")]
    out["rank loss"] = [_fmt(x) for x in _col(df, "ranking_loss")]
    out["cost"] = ["ref" if loss == reference and n else ("—" if _isnan(c) else f"{c:.2f}×")
                   for loss, n, c in zip(df["loss"], df["seeds"], _col(df, "cost"), strict=True)]
    left = [set(str(x).split(";")) if isinstance(x, str) and x else set()
            for x in _col(df, "left_out", "")]
    for f in findings:
        cells = []
        for x, lo, n in zip(df[f].astype(float), left, df["seeds"], strict=True):
            if _isnan(x):
                cells.append("n/e" if n else "")
            else:
                cells.append(f"({x:.3f})" if f in lo else f"{x:.3f}")
        out[short_name(f, findings)] = cells
    return out


def footnote(df) -> list[str]:
    """What the CI and p mean, in one line, then the table's own notes."""
    if df.empty or "p_holm" not in df.columns:
        return []
    alpha = df.attrs.get("alpha", 0.05)
    n = df.attrs.get("comparisons", 0)
    primary = df.attrs.get("primary") or []
    family = (f"p Holm: the {len(primary)} primary contrast"
              f"{'' if len(primary) == 1 else 's'} adjusted as one family, the other "
              f"{max(n - sum(1 for v in _col(df, 'family', '') if v == 'primary'), 0)} "
              "(exploratory) as another") if primary else \
        f"p Holm: adjusted over the {n} comparison{'' if n == 1 else 's'} shown"
    lines = [
        "95% CI and p: seed-to-seed spread (each comparison's own, nothing pooled between "
        "losses) + the test-set term shared by the seeds (DeLong influence values summed per "
        "patient); Student t on a df that counts both terms' uncertainty (3+ seeds), "
        "Behrens-Fisher (2 seeds: conservative); no CI or p from fewer than 2 matched seeds; "
        "† = unstable over seeds "
        f"(see below); {family}, * = adjusted p < {alpha:g}.",
        f"Mean AUC, Δ and CIs over the {df.attrs.get('rule', 'classes kept')}; (0.xxx) = "
        "left out of the means, n/e = not estimable (one label value in the test split); "
        "cost = train time / the reference's (same seed and device).",
    ]
    left = sorted({x for v in _col(df, "left_out", "") if isinstance(v, str) and v
                   for x in v.split(";")})
    if left:
        lines.append(f"Left out of the means: {', '.join(left)}.")
    if primary:
        lines.append(verdict_note(df.attrs.get("margin"), alpha))
    if "p_best" in df.columns:
        lines.append(df.attrs.get("p_best_note", ""))
    if df.attrs.get("strata"):
        from mlbench.leaderboard.strata import notes as strata_notes

        lines += strata_notes(df.attrs["strata"])
    return lines + list(df.attrs.get("notes", []))


def verdict_note(margin, alpha: float) -> str:
    """How a primary contrast's verdict is read off its tests."""
    m = "" if margin is None else f"{margin:g}"
    eq = (f"; equivalent: both one-sided tests of |Δ| >= {m} reject (TOST, Holm over the "
          f"family; the {100 * (1 - 2 * alpha):g}% CI inside ±{m}); non-inferior: the one-sided "
          f"test of Δ <= -{m} rejects") if margin is not None else \
        " (no analysis.margin: no equivalence or non-inferiority verdicts)"
    return (f"Verdicts of the primary contrasts: better / worse: p Holm < {alpha:g} in the "
            f"primary family, by the sign of Δ{eq}; otherwise inconclusive (not significant "
            "is not evidence of equality); no test with fewer than 2 matched seeds.")


def primary_frame(df, fmt: str):
    """The primary contrasts (``df.attrs["primary"]``) as a display table."""
    import pandas as pd

    rows = df.attrs.get("primary") or []
    out = []
    for r in rows:
        lo, hi = r.get("delta_lo", math.nan), r.get("delta_hi", math.nan)
        out.append({
            "setup": " / ".join(x for x in (r["backbone"], r["head"], r.get("setup", "")) if x),
            "contrast": f"{r['loss']} vs {r['versus']}",
            "seeds": str(r["matched"]),
            "Δ [95% CI]": _fmt(r["delta"], signed=True)
            + ("" if _isnan(lo) else f" [{lo:+.4f}, {hi:+.4f}]"),
            "p": _fmt_p(r["p"]),
            "p Holm": _fmt_p(r.get("p_holm", math.nan)) + (" *" if r.get("significant") else ""),
            "margin": "" if r.get("margin") is None else f"±{r['margin']:g}",
            "p equiv": _fmt_p(r.get("p_equiv", math.nan)),
            "p non-inf": _fmt_p(r.get("p_noninf", math.nan)),
            "verdict": r.get("verdict", ""),
        })
        if "expected" in r:  # a control: the verdict it must get, and whether it did
            out[-1]["expected"] = r["expected"]
            out[-1]["control"] = "pass" if r["as_expected"] else "FAIL"
    frame = pd.DataFrame(out)
    if "expected" in frame.columns:
        frame[["expected", "control"]] = frame[["expected", "control"]].fillna("")
    return frame


def controls_line(rows: list[dict]) -> str | None:
    """``controls: 3 of 3 as expected`` (None without ``analysis.expect``)."""
    checked = [r for r in rows if "expected" in r]
    if not checked:
        return None
    ok = sum(bool(r["as_expected"]) for r in checked)
    failed = [f"{r['contrast']} ({r.get('verdict')}, expected {r['expected']})"
              for r in checked if not r["as_expected"]]
    return (f"controls: {ok} of {len(checked)} as expected"
            + (f"; not as expected: {'; '.join(failed)}" if failed else ""))


def render(df, fmt: str = "text", reference: str = "bce") -> str:
    """The leaderboard as text (tabulate), Markdown, CSV (raw numbers) or an HTML table."""
    if fmt not in FORMATS:
        raise ValueError(f"Expected argument `fmt` to be one of {list(FORMATS)} but got {fmt!r}")
    if df.empty:
        return "no finished runs yet\n"
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return as_json(df)
    shown = display_frame(df, reference)
    parts = []
    if df.attrs.get("primary"):
        n = len(df.attrs["primary"])
        parts += titled_tables([(f"Primary contrasts (one Holm family of {n})",
                                 primary_frame(df, fmt))], fmt)
        line = controls_line(df.attrs["primary"])
        if line:
            parts.append(f"<p class='note'>{html.escape(line)}</p>" if fmt == "html"
                         else line + "\n")
    parts += titled_tables(((f"{backbone} / {head}", group.drop(columns=["backbone", "head"]))
                           for (backbone, head), group
                           in shown.groupby(["backbone", "head"], sort=False)), fmt)
    if df.attrs.get("strata"):
        from mlbench.leaderboard.strata import tables

        parts += titled_tables(tables(df.attrs["strata"]), fmt)
    notes = footnote(df)
    if fmt == "html":
        parts += [f"<p class='note'>{html.escape(line)}</p>" for line in notes]
    elif notes:
        parts.append("\n".join(("" if fmt == "text" else "- ") + line for line in notes) + "\n")
    return "\n".join(parts) + "\n"


def as_json(df) -> str:
    """The leaderboard as JSON: rows (raw numbers), primary contrasts, notes."""
    import json

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if hasattr(x, "item"):
            return clean(x.item())
        return x

    rows = [{k: clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]
    primary = [{k: clean(v) for k, v in r.items()} for r in df.attrs.get("primary") or []]
    strata = [{**e, "losses": [{k: clean(v) for k, v in r.items()} for r in e["losses"]],
               "per_class": [{k: clean(v) for k, v in r.items()} for r in e["per_class"]]}
              for e in df.attrs.get("strata") or []]
    return json.dumps({"rows": rows, "primary": primary, "strata": strata,
                       "margin": df.attrs.get("margin"),
                       "alpha": df.attrs.get("alpha"), "reference": df.attrs.get("reference"),
                       "notes": footnote(df)}, indent=1, ensure_ascii=False) + "\n"


def leaderboard(out_dir: str | Path, fmt: str = "text", reference: str | None = None,
                per_class: bool = True, all_settings: bool = False,
                analysis: dict | None = None, strata: bool = True) -> str:
    """Open ``OUT/results.db`` and render its leaderboard.

    ``reference`` defaults to the suite's ``eval.reference`` stored with the results. A tuned
    suite gets one row per loss from its chosen setting (:mod:`.tuned`), with the chosen
    values and the budget; ``all_settings`` adds every tried setting's validation and test
    AUC (with ``fmt="csv"``: that table alone). ``analysis``: primary contrasts and margin
    (default: the suite's ``analysis`` stored with the results). ``strata``: False leaves
    out the strata tables (per-class Δ, without the sparsest class, validation vs test,
    view and label-count strata).
    """
    from mlbench.db import ResultsDB
    from mlbench.leaderboard.analysis import loss_key
    from mlbench.leaderboard.tuned import render_settings

    path = Path(out_dir)
    db_path = path if path.suffix == ".db" else path / "results.db"
    with ResultsDB(db_path, readonly=True) as db:
        df, tuned = leaderboard_frame(db, reference, per_class, analysis=analysis, strata=strata)
        reference = df.attrs.get("reference", reference or db.get_meta("reference", "bce"))
        every = render_settings(db, fmt, tuned and tuned.selections) if all_settings else ""
        # named test sets: their blocks for an untuned suite (a tuned one: its own split)
        sets = None if tuned else test_set_boards(db, df, reference, per_class, analysis,
                                                  strata)
    if fmt == "csv" and all_settings:
        return every
    if sets:
        return render_test_sets(sets, fmt, reference) + (f"\n{every}" if every else "")
    text = render(df, fmt, reference) + (f"\n{every}" if every else "")
    if fmt in ("text", "md") and not df.empty:
        done = df[df["seeds"] > 0]
        if loss_key(reference) not in set(done["loss"]):
            text += (f"\nnote: no finished run of the reference loss {loss_key(reference)!r}, "
                     f"so Δ and p are empty; losses with finished runs: "
                     f"{sorted(set(done['loss']))}\n")
    return text


def test_set_boards(db, own, reference: str, per_class: bool = True,
                    analysis: dict | None = None, strata: bool = True) -> dict | None:
    """The named test sets of a results folder (``eval.test_sets``): {"boards": one
    ``TestSetBoard`` per test set, ``nih`` (``own``: its frame) first, "transfer": the
    ranking-transfer rows, "deltas": Δ vs the reference side by side}; None when the runs were
    scored on their own test split alone (the leaderboard is then as before), save for a
    statement that split is restricted to the images present."""
    from mlbench.leaderboard import testsets as ts

    tables = ts.names(db)
    if len(tables) < 2:
        note = ((db.get_meta("test_set_info") or {}).get(ts.OWN) or {}).get("notes") or []
        if note and not own.empty:
            own.attrs["notes"] = [f"test set nih: {x}" for x in note] + own.attrs["notes"]
        return None
    boards = ts.boards(db, reference, per_class, analysis, own=own, strata=strata)
    return {"boards": boards, "transfer": ts.transfer(db, boards),
            "deltas": ts.delta_frame(boards, reference)}


def render_test_sets(sets: dict, fmt: str, reference: str) -> str:
    """One block per test set (its statement, then its leaderboard as :func:`render`), the
    ranking transfer and Δ vs the reference per test set; CSV: the rows of every test set
    with a ``test_set`` column; JSON: ``test_sets`` (each one's rows, notes, primary) and
    ``transfer`` beside the own split's keys."""
    import json

    import pandas as pd

    from mlbench.leaderboard.testsets import transfer_frame

    boards = sets["boards"]
    if fmt == "csv":
        frames = [b.frame.assign(test_set=b.name) for b in boards if not b.frame.empty]
        if not frames:
            return "no finished runs yet\n"
        df = pd.concat(frames, ignore_index=True)
        return df[["test_set", *[c for c in df.columns if c != "test_set"]]].to_csv(index=False)
    if fmt == "json":
        own = json.loads(render(boards[0].frame, "json", reference)) if not \
            boards[0].frame.empty else {"rows": []}
        own["test_sets"] = [{"name": b.name, "info": b.info,
                             **(json.loads(render(b.frame, "json", reference))
                                if not b.frame.empty else {"rows": []})} for b in boards]
        own["transfer"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                            for k, v in r.items()} for r in sets["transfer"]]
        return json.dumps(own, indent=1, ensure_ascii=False, default=str) + "\n"
    parts = []
    for b in boards:
        title = f"Test set {b.name}"
        head = b.header()
        if fmt == "md":
            parts.append(f"## {title}\n\n" + "\n".join(f"- {x.strip()}" for x in head) + "\n")
        elif fmt == "html":
            parts.append(f"<h2>{html.escape(title)}</h2>\n" + "".join(
                f"<p class='note'>{html.escape(x)}</p>" for x in head))
        else:
            parts.append(f"##### {title} #####\n" + "\n".join(head) + "\n")
        parts.append(render(b.frame, fmt, reference))
    many = len({r["setup"] for r in sets["transfer"]}) > 1
    extra = []
    if sets["transfer"]:
        extra.append(("Ranking transfer: Kendall tau of the loss ordering by mean AUC between "
                      "test sets, 95% percentile interval over seeds x patients",
                      transfer_frame(sets["transfer"], many)))
    if not sets["deltas"].empty:
        extra.append((f"Δ vs {reference} per test set [95% CI] (* Holm-significant within "
                      "its test set)", sets["deltas"]))
    parts += titled_tables(extra, fmt)
    if sets["transfer"]:
        notes = ["Transfer: 'transfers' when the interval of tau is above 0, 'reverses' when "
                 "below, otherwise 'not shown' (mlbench.stats.transfer; few losses and a small "
                 "test set give intervals that span most of [-1, 1])."]
        notes += [r["line"] for r in sets["transfer"] if r["line"] and not r["verdict"]]
        if fmt == "html":
            parts += [f"<p class='note'>{html.escape(x)}</p>" for x in notes]
        else:
            parts.append("\n".join(("" if fmt == "text" else "- ") + x for x in notes) + "\n")
    return "\n".join(parts) + "\n"


def leaderboard_frame(db, reference: str | None = None, per_class: bool = True,
                      analysis: dict | None = None, strata: bool = True):
    """The leaderboard's numbers of an open ``ResultsDB`` and the tuned suite's selection
    (``SelectedRuns``, or None): :func:`analysis.build` with the suite's stored reference by
    default; a tuned suite gets one row per loss from its chosen setting (:mod:`.tuned`);
    ``analysis``: primary contrasts and margin (default: the suite's, stored)."""
    from mlbench.leaderboard.analysis import build
    from mlbench.leaderboard.tuned import SelectedRuns, annotate
    from mlbench.suite import stored_plan

    reference = reference or db.get_meta("reference", "bce")
    tuned = SelectedRuns(db) if stored_plan(db) else None
    df = build(tuned or db, reference=reference, per_class=per_class, analysis=analysis,
               strata=strata)
    if tuned is not None:
        df = annotate(df, tuned.selections, tuned.fresh)
    return df, tuned
