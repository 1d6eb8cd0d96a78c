"""The controls suite (issue 25 item 5), reduced: suites/controls.yaml loaded with overrides
to a tiny size, results planted by hand, and the expected-vs-observed machinery checked (not
the outcomes: the full suite is run by hand, docs/HARNESS.md); plus the strata it prints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlbench.db import ResultsDB
from mlbench.leaderboard import leaderboard
from mlbench.leaderboard.analysis import build
from mlbench.stats.strata import STRATA
from tests.helpers import fill_suite

SUITE = Path(__file__).resolve().parents[2] / "suites" / "controls.yaml"
TINY = ["dataset.sim.images=120", "dataset.sim.size=16", "dataset.image_size=16",
        "seeds=[0,1,2]", "train.epochs=1"]


@pytest.fixture(scope="module")
def controls_out(tmp_path_factory):
    from mlbench.suite import load_suite

    out = tmp_path_factory.mktemp("controls") / "out"
    suite = load_suite(SUITE, overrides=TINY, env={"MLBENCH_OUT": str(out)}, train_keys=False)
    # msml clearly below bce, the composite a little above it, shuffled labels at chance
    strength = {"bce": 1.5, "msml": 0.7, "bce+0.1*msml": 1.55, "bce(labels=shuffled)": 0.0}
    return fill_suite(suite, strength, 16, analysis=True)


def test_the_suite_declares_its_controls():
    from mlbench.suite import expectations, load_suite

    suite = load_suite(SUITE, overrides=TINY, env={}, train_keys=False)
    assert expectations(suite.config["analysis"]) == {
        "msml vs bce": ("worse",), "bce+0.1*msml vs bce": ("equivalent",),
        "bce(labels=shuffled) vs chance": ("equivalent",)}
    assert suite.config["dataset"]["sim"]["test_fraction"] == 0.75
    assert {r.loss for r in suite.runs} == {"bce", "msml", "bce+0.1*msml", "bce(labels=shuffled)"}


def test_expected_and_observed_verdicts_are_shown(controls_out):
    with ResultsDB(controls_out, readonly=True) as db:
        df = build(db, reference="bce")
    prim = {r["contrast"]: r for r in df.attrs["primary"]}
    assert set(prim) == {"msml vs bce", "bce+0.1*msml vs bce", "bce(labels=shuffled) vs chance"}
    for r in prim.values():  # whatever the verdict, the check is the verdict's membership
        assert r["as_expected"] == (r["verdict"] in r["expected"].split(" or "))
    chance = prim["bce(labels=shuffled) vs chance"]
    mean = df.loc[df["loss"] == "bce(labels=shuffled)", "mean_auc"].item()
    assert chance["delta"] == pytest.approx(mean - 0.5)
    assert chance["delta_lo"] < chance["delta"] < chance["delta_hi"]
    assert prim["msml vs bce"]["verdict"] == "worse"  # planted far below: the machinery sees it
    text = leaderboard(controls_out, per_class=False)
    ok = sum(r["as_expected"] for r in prim.values())
    assert f"controls: {ok} of 3 as expected" in text
    assert "expected" in text and ("pass" in text or "FAIL" in text)
    got = json.loads(leaderboard(controls_out, fmt="json", per_class=False))
    assert {r["contrast"]: r["as_expected"] for r in got["primary"]} == {
        k: r["as_expected"] for k, r in prim.items()}


def test_strata_per_class_delta_and_validation_beside_test(controls_out):
    with ResultsDB(controls_out, readonly=True) as db:
        df = build(db, reference="bce")
    (entry,) = df.attrs["strata"]
    assert any("no view strata" in n for n in entry["notes"])  # no dataset behind "x"
    rows = {r["loss"]: r for r in entry["losses"]}
    for loss, r in rows.items():
        assert r["mean_auc"] == pytest.approx(df.loc[df["loss"] == loss, "mean_auc"].item())
        # 120 planted images: some strata have too few positives of every class (NaN)
        assert any(np.isfinite(r[name]) for name in STRATA[2:])
        assert r["val_auc"] == pytest.approx(0.7)  # the planted curve's best epoch
    assert sorted(r["test_rank"] for r in rows.values()) == [1, 2, 3, 4]
    prim = {r["contrast"]: r for r in df.attrs["primary"]}
    for w in entry["wins"]:
        per = [r["delta"] for r in entry["per_class"] if r["contrast"] == w["contrast"]]
        assert np.mean(per) == pytest.approx(prim[w["contrast"]]["delta"])
        assert w["wins"] + w["losses"] + w["ties"] == w["classes"] == len(per)
    text = leaderboard(controls_out, per_class=False)
    assert "per-class Δ of msml vs bce" in text and "pos >=2 findings" in text
    assert "validation vs test" in text


def _strata_json(out) -> str:
    with ResultsDB(out, readonly=True) as db:
        return json.dumps(build(db, reference="bce").attrs["strata"], sort_keys=True)


def test_stored_strata_are_read_and_give_the_same_numbers(controls_out, tmp_path):
    """The driver's stratum tables (one per run, results.db) are what the leaderboard reads:
    the same numbers as computed from the scores; stale ones (other predictions) are not."""
    import shutil

    from mlbench.db import pack_array
    from mlbench.driver.testsets import store_strata

    out = tmp_path / "out"
    shutil.copytree(controls_out, out)
    computed = _strata_json(out)
    with ResultsDB(out, readonly=True) as db:
        runs = db.runs("finished")
    ids = [r["id"] for r in runs]
    assert store_strata(out, ids) == len(ids) == 12
    assert store_strata(out, ids) == 0  # up to date: nothing computed again
    assert _strata_json(out) == computed  # identical with the stored tables
    # they are read: a planted table shows
    victim = next(r for r in runs if r["loss"] == "msml")
    with ResultsDB(out) as db:
        have = db.stored_strata(victim["id"])
        planted = have["table"].copy()
        planted[0] = np.where(np.isnan(planted[0]), np.nan, 0.25)
        db.store_strata(victim["id"], "nih", have["key"], have["names"], planted)
    def msml(text):  # msml's mean AUC in a stratum where it is estimable
        row = next(r for r in json.loads(text)[0]["losses"] if r["loss"] == "msml")
        return row[stratum]

    stratum = next(n for n in STRATA[2:] if np.isfinite(
        next(r for r in json.loads(computed)[0]["losses"] if r["loss"] == "msml")[n]))
    planted_mean = msml(_strata_json(out))  # 1 of its 3 seeds planted
    assert planted_mean != msml(computed)
    # other predictions of that run: its stored table is stale, recomputed from the scores
    with ResultsDB(out) as db:
        scores, _ = db.predictions(victim["id"])
        db.conn.execute("UPDATE predictions SET scores=? WHERE run_id=?",
                        (pack_array(np.ascontiguousarray(scores[::-1])), victim["id"]))
    stale = _strata_json(out)
    assert stale != computed and msml(stale) not in (
        msml(computed), planted_mean)
    assert store_strata(out, ids) == 1  # the next run stores it again
    assert _strata_json(out) == stale


def test_no_strata_leaves_the_strata_tables_out(controls_out, capsys):
    from tests.helpers import cli

    code, text, _ = cli(capsys, "leaderboard", str(controls_out), "--no-per-class", "--no-strata")
    assert code == 0 and "controls: " in text  # the primary contrasts stay
    assert "pos >=2 findings" not in text and "validation vs test" not in text
    assert "pos >=2 findings" in leaderboard(controls_out, per_class=False)
    assert json.loads(leaderboard(controls_out, fmt="json", strata=False))["strata"] == []
