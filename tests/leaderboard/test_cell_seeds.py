"""The leaderboard of a suite whose cells have different seeds (`seeds.cells`): each loss vs
the reference on the seeds both have, complete when a cell has its own seeds, P(best) over
every loss; `status` counts every cell's runs."""

from __future__ import annotations

import numpy as np
import pytest

from mlbench import stats
from mlbench.db import ResultsDB
from mlbench.leaderboard.analysis import build
from mlbench.suite import load_suite
from tests.helpers import fill, tiny_suite

FIVE = ["bce", "msml", "bce+0.1*msml"]
THREE = ["focal", "asl", "lsep", "zlpr", "wbce", "db"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """3 losses x 5 seeds, 6 x 3; msml's seed 4 not run (pending)."""
    suite = load_suite(tiny_suite(None, tmp_path_factory.mktemp("cells") / "out", **{
        "grid.loss": FIVE + THREE,
        "seeds": {"default": [0, 1, 2], "cells": [{"only": {"loss": FIVE}, "seeds": [0, 1, 2, 3, 4]}]},
        "analysis": {"primary": ["msml vs bce+0.1*msml", "focal vs msml"]}}), train_keys=False)
    strength = dict.fromkeys(FIVE + THREE, 1.0) | {"msml": 1.3, "focal": 0.8}
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
        fill(db, [r for r in suite.runs if (r.loss, r.seed) != ("msml", 4)], strength.__getitem__)
        db.set_meta("reference", "bce")
        db.set_meta("analysis", suite.config["analysis"])
        db.set_meta("seeds", suite.seeds.to_json())  # what `run` stores
    return suite


def _mean_aucs(db, loss):
    out = {}
    for r in db.runs("finished"):
        if r["loss"] == loss:
            scores, targets = db.predictions(r["id"])
            out[r["seed"]] = stats.run_stats(targets, scores, list(range(14))).mean_auc
    return out


def test_losses_are_compared_on_the_seeds_they_share(mixed):
    with ResultsDB(mixed.output, readonly=True) as db:
        df = build(db, reference="bce", strata=False)
        by = df.set_index("loss")
        assert by.loc[FIVE, "seeds"].tolist() == [5, 4, 5]
        assert (by.loc[THREE, "seeds"] == 3).all()
        assert by.loc["msml", "matched"] == 4 and by.loc["bce+0.1*msml", "matched"] == 5
        assert (by.loc[THREE, "matched"] == 3).all()
        # incomplete: msml lacks a seed of its cell; the 3-seed losses have all of theirs
        assert by["incomplete"].tolist() == [loss == "msml" for loss in by.index]
        bce = _mean_aucs(db, "bce")
        for loss, seeds in (("bce+0.1*msml", range(5)), ("msml", range(4)), ("focal", range(3))):
            own = _mean_aucs(db, loss)
            want = np.mean([own[s] - bce[s] for s in seeds])
            assert by.loc[loss, "delta"] == pytest.approx(want, abs=1e-12), loss
        assert np.isfinite(by.loc[FIVE + THREE, "p_best"]).all()
        assert by.loc[FIVE + THREE, "p_best"].sum() == pytest.approx(1.0)
        # primary contrasts between two non-reference losses: their common seeds
        prim = {r["contrast"]: r for r in df.attrs["primary"]}
        assert prim["msml vs bce+0.1*msml"]["matched"] == 4
        assert prim["focal vs msml"]["matched"] == 3
        comp = _mean_aucs(db, "bce+0.1*msml")
        msml = _mean_aucs(db, "msml")
        assert prim["msml vs bce+0.1*msml"]["delta"] == pytest.approx(
            np.mean([msml[s] - comp[s] for s in range(4)]), abs=1e-12)


def test_without_stored_seeds_the_fullest_loss_sets_complete(mixed, tmp_path):
    import shutil

    shutil.copy(mixed.output / "results.db", tmp_path / "results.db")
    with ResultsDB(tmp_path) as db:
        db.set_meta("seeds", {})  # a results.db from before per-cell seeds
        by = build(db, reference="bce", strata=False).set_index("loss")
    assert by.loc[THREE + ["msml"], "incomplete"].all() and not by.loc["bce", "incomplete"]


def test_status_counts_every_cells_runs(mixed):
    from mlbench.logs import collect

    got = collect(mixed.output)
    assert got["counts"]["total"] == 3 * 5 + 6 * 3
    assert got["counts"]["finished"] == 3 * 5 + 6 * 3 - 1 and got["counts"]["pending"] == 1
