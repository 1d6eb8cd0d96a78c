"""Primary contrasts on the leaderboard (issue 25 item 2): their own Holm family, the rest
exploratory in another, a verdict per contrast, in every format and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlbench import stats
from mlbench.db import ResultsDB
from mlbench.leaderboard import leaderboard
from mlbench.leaderboard.analysis import build
from mlbench.stats.verdicts import family_verdicts
from tests.helpers import EIGHT_RUNS, fill_suite, tiny_suite

PRIMARY = ["bce+0.1*msml vs bce", "msml vs bce+0.1*msml @ resnet10t/linear"]


@pytest.fixture(scope="module")
def primary_out(tmp_path_factory):
    from mlbench.suite import load_suite

    suite = load_suite(tiny_suite(None, tmp_path_factory.mktemp("primary") / "out", EIGHT_RUNS, **{
        "grid.loss": ["bce", "msml", "bce+0.1*msml"], "seeds": [0, 1, 2],
        "analysis": {"primary": PRIMARY, "margin": 0.05}}), train_keys=False)
    strength = {"bce": 1.0, "msml": 1.5, "bce+0.1*msml": 2.0}
    return fill_suite(suite, strength, 32, analysis=True)


def test_families_and_verdicts(primary_out):
    with ResultsDB(primary_out) as db:
        df = build(db, reference="bce")
        prim = df.attrs["primary"]
        # the composite vs bce in both setups, msml vs the composite only where confined
        assert [(r["head"], r["contrast"]) for r in prim] == [
            ("linear", PRIMARY[0]), ("linear", PRIMARY[1].split(" @")[0] + " @ resnet10t/linear"),
            ("bilinear", PRIMARY[0])]
        p = np.array([r["p"] for r in prim])
        np.testing.assert_allclose([r["p_holm"] for r in prim], stats.holm(p))
        v = family_verdicts([r["delta"] for r in prim], [r["se"] for r in prim],
                            [r["df"] for r in prim], p, 0.05)
        assert [r["verdict"] for r in prim] == list(v["verdict"]) == ["better", "worse", "better"]
        # the leaderboard rows: primary rows carry their contrast's p Holm and verdict
        comp = df[df["family"] == "primary"]
        assert set(comp["loss"]) == {"bce+0.1*msml"} and (comp["verdict"] == "better").all()
        np.testing.assert_allclose(comp["p_holm"], [prim[0]["p_holm"], prim[2]["p_holm"]])
        explo = df[df["family"] == "exploratory"]
        assert set(explo["loss"]) == {"msml"}
        np.testing.assert_allclose(explo["p_holm"], stats.holm(explo["p"].to_numpy(float)))
        assert (df.loc[df["loss"] == "bce", "family"] == "").all()
        # msml vs the composite: the leaderboard's comparison of the two on their seeds
        runs = {(r["loss"], r["seed"]): r for r in db.runs("finished") if r["head"] == "linear"}
        preds = {k: db.predictions(r["id"]) for k, r in runs.items()}
        targets = next(iter(preds.values()))[1]
        g = np.arange(len(targets))
        rs = {k: stats.run_stats(targets, x[0], list(range(14))) for k, x in preds.items()}
        a = [rs[("msml", s)] for s in range(3)]
        b = [rs[("bce+0.1*msml", s)] for s in range(3)]
        c = stats.compare(a, b, g, len(g))
        assert prim[1]["delta"] == pytest.approx(c.delta)
        assert prim[1]["delta"] < 0


def test_every_format_shows_them(primary_out):
    text = leaderboard(primary_out, per_class=False)
    assert "Primary contrasts (one Holm family of 3)" in text and "better" in text
    assert "exploratory" in text and "TOST" in text
    md = leaderboard(primary_out, fmt="md", per_class=False)
    assert "### Primary contrasts" in md and "worse" in md
    html = leaderboard(primary_out, fmt="html", per_class=False)
    assert "<h3>Primary contrasts" in html and "worse" in html
    csv = leaderboard(primary_out, fmt="csv", per_class=False)
    head = csv.splitlines()[0].split(",")
    assert {"family", "verdict", "p_equiv", "p_noninf", "margin"} <= set(head)
    got = json.loads(leaderboard(primary_out, fmt="json", per_class=False))
    assert [r["verdict"] for r in got["primary"]] == ["better", "worse", "better"]
    assert got["margin"] == 0.05 and len(got["rows"]) == 6


def test_override_and_no_primary(primary_out):
    plain = build_plain(primary_out, {"primary": [], "margin": None})
    assert "family" not in plain.columns and not plain.attrs["primary"]
    np.testing.assert_allclose(plain["p_holm"], stats.holm(plain["p"].to_numpy(float)))
    text = leaderboard(primary_out, per_class=False, analysis={"primary": ["msml vs bce"]})
    assert "one Holm family of 2" in text and "no analysis.margin" in text


def build_plain(out, analysis):
    with ResultsDB(out) as db:
        return build(db, reference="bce", analysis=analysis)


@pytest.mark.slow
def test_report_shows_them(primary_out):
    from mlbench.leaderboard.report import build_report

    page = build_report(primary_out)
    assert "Primary contrasts" in page and "better" in page


def test_p_best_on_the_leaderboard(primary_out):
    with ResultsDB(primary_out) as db:
        df = build(db, reference="bce")
    for _, part in df.groupby("head"):
        assert part["p_best"].sum() == pytest.approx(1.0)
        assert part["exp_rank"].sum() == pytest.approx(6.0)
        best = part.loc[part["p_best"].idxmax(), "loss"]
        assert best == "bce+0.1*msml"  # the strongest planted signal
    assert "P(best)" in leaderboard(primary_out, per_class=False)
