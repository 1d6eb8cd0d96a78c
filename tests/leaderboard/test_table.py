"""Leaderboard numbers are the records: every cell equals what results.db holds, or the
statistics of mlbench.stats recomputed from its stored test predictions."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from mlbench import stats
from mlbench.db import ResultsDB
from mlbench.leaderboard import display_frame, leaderboard, render
from mlbench.leaderboard.analysis import PUBLISHED, build
from tests.helpers import EIGHT_RUNS, FINDINGS, REPO, fill, plant, tiny_suite


def _db_values(db, backbone, head, loss):
    rows = [r for r in db.runs("finished")
            if (r["backbone"], r["head"], r["loss"]) == (backbone, head, loss)]
    by_seed = {}
    for r in rows:
        m = {(x["name"], x["finding"]): x for x in db.metrics(r["id"])}
        by_seed[r["seed"]] = (r["id"], m)
    return by_seed


def test_numbers_equal_db(filled):
    out, _ = filled
    with ResultsDB(out) as db:
        df = build(db, reference="bce")
        assert len(df) == 6  # 2 heads x 3 losses
        for head, part in df.groupby("head"):
            runs = {(r["loss"], r["seed"]): r for r in db.runs("finished") if r["head"] == head}
            preds = {k: db.predictions(r["id"]) for k, r in runs.items()}
            targets = next(iter(preds.values()))[1]
            groups = np.arange(len(targets))  # fake runs store no patient ids: one per image
            classes, _ = stats.SparseRule().check(targets, groups)
            assert classes == list(range(14))
            rs = {k: stats.run_stats(targets, p[0], classes) for k, p in preds.items()}
            losses = ["bce", "msml", "bce+0.1*msml"]
            means = {loss: np.array([rs[(loss, s)].mean_auc for s in (0, 1)]) for loss in losses}
            mean_terms = dict(zip(losses, stats.seed_terms([means[x] for x in losses]),
                                  strict=True))
            diff_terms = dict(zip(losses[1:], stats.seed_terms(
                [means[x] - means["bce"] for x in losses[1:]]), strict=True))
            for _, row in part.iterrows():
                seeds = _db_values(db, row["backbone"], row["head"], row["loss"])
                stored = [m[("mean_auc", "")]["value"] for _, m in seeds.values()]
                assert row["seeds"] == len(seeds) == 2
                assert row["mean_auc"] == pytest.approx(np.mean(stored), abs=1e-12)
                assert row["std"] == pytest.approx(np.std(stored, ddof=1), abs=1e-12)
                assert row["map"] == np.mean([m[("map", "")]["value"] for _, m in seeds.values()])
                assert row["lrap"] == np.mean([m[("lrap", "")]["value"] for _, m in seeds.values()])
                for f in FINDINGS:
                    assert row[f] == np.mean([m[("auc", f)]["value"] for _, m in seeds.values()])
                mine = [rs[(row["loss"], s)] for s in (0, 1)]
                ci = stats.mean_ci(mine, groups, len(groups), seed=mean_terms[row["loss"]])
                assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((ci.ci_lo, ci.ci_hi))
                if row["loss"] == "bce":
                    assert row["delta"] == 0 and math.isnan(row["p"])
                    continue
                # the paired comparison over both seeds (it was the largest per-seed image-level
                # DeLong p, which hid sign flips across seeds: issue 12)
                c = stats.compare(mine, [rs[("bce", s)] for s in (0, 1)], groups, len(groups),
                                  seed=diff_terms[row["loss"]])
                assert row["delta"] == pytest.approx(c.delta) and row["p"] == pytest.approx(c.p_value)
                assert (row["delta_lo"], row["delta_hi"]) == pytest.approx((c.ci_lo, c.ci_hi))
    ps = df["p"].to_numpy(dtype=float)
    np.testing.assert_allclose(df["p_holm"], stats.holm(ps))  # over all 4 comparisons
    assert (df["significant"] == (df["p_holm"] < 0.05)).all()
    # the fake signal strengths order the losses within each group
    for _, group in df.groupby("head"):
        assert list(group["loss"]) == ["bce+0.1*msml", "msml", "bce"]


def test_csv_is_raw_numbers_and_text_rounds_them(filled):
    out, _ = filled
    with ResultsDB(out) as db:
        df = build(db)
    csv = leaderboard(out, fmt="csv")
    back = pd.read_csv(__import__("io").StringIO(csv))
    assert np.allclose(back["mean_auc"], df["mean_auc"], rtol=0, atol=1e-12)
    text = leaderboard(out)
    for v in df["mean_auc"]:
        assert f"{v:.4f}" in text
    assert "== resnet10t / linear ==" in text and "Δ vs bce" in text and "ref" in text
    md = leaderboard(out, fmt="md")
    assert "### resnet10t / bilinear" in md and "| loss" in md
    html = leaderboard(out, fmt="html")
    assert "<table>" in html and "<h3>resnet10t / linear</h3>" in html
    assert not re.search(r"<td>\s|\s</td>", html)  # no padding inside cells (issue 13)
    assert "95% CI and p:" in text and "p Holm" in text and "Δ vs bce [95% CI]" in text
    # published context rows only for the real dataset
    assert "CheXNet" not in text


OFFICIAL_TEST_LIST = REPO.parent / "shared/data/nih-official-split/test_list.txt"


def test_published_rows_only_beside_the_official_test_split(filled, tmp_path):
    """SPEC §6's published AUCs were measured on the official test split in full: beside
    runs scored on other images (the real films' 563, a partial release) they are a note,
    not rows."""
    from mlbench.layout import OFFICIAL_TEST
    from mlbench.suite import load_suite

    out, _ = filled
    with ResultsDB(out) as db:
        db.set_meta("dataset", {"kind": "real", "root": "/data/cxr14", "image_size": 224})
    text = leaderboard(out)
    assert "published (context)" not in text and "CheXNet" in text
    assert "are not shown" in text and f"{OFFICIAL_TEST['images']:,} images" in text
    if not OFFICIAL_TEST_LIST.is_file():
        pytest.skip(f"{OFFICIAL_TEST_LIST} is absent")
    names = np.array(OFFICIAL_TEST_LIST.read_text().split())
    rng = np.random.default_rng(0)
    targets = (rng.random((len(names), len(FINDINGS))) < 0.1).astype(np.float32)
    two = tiny_suite(None, tmp_path / "real", seeds=[0, 1], **{"grid.loss": ["bce"]})
    suite = load_suite(two, train_keys=False, env={})
    with ResultsDB(suite.output) as db:
        db.add_runs(suite.runs)
        db.set_meta("dataset", {"kind": "real", "root": "/data/cxr14", "image_size": 224})
        for i, run in enumerate(suite.runs):  # in another order than the list's
            order = rng.permutation(len(names))
            scores = targets[order] + rng.normal(size=targets.shape)
            plant(db, run.id, targets[order], scores, image_ids=names[order],
                  patient_ids=np.arange(len(names))[order] // 9, seed=i)
    text = leaderboard(suite.output, per_class=False)
    assert "published (context) / official split" in text and "are not shown" not in text
    assert "published (context) / random (not comparable) split" in text
    for source, _model, _, auc in PUBLISHED:
        assert re.search(re.escape(source) + ".*" + f"{auc:.4f}", text)


def test_failed_runs_counted_and_reference_option(tmp_path):
    from mlbench.suite import load_suite

    suite = load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS), train_keys=False, env={})
    with ResultsDB(suite.output) as db:
        fill(db, suite.runs, {"bce": 1.0, "bce+0.1*msml": 2.0}.__getitem__, fail={"bce"})
        df = build(db, reference="bce")
        bce = df[df["loss"] == "bce"]
        assert (bce["seeds"] == 0).all() and (bce["failed"] == 2).all()
        other = df[df["loss"] == "bce+0.1*msml"]
        assert other["delta"].isna().all()  # no finished reference to compare with
        df2 = build(db, reference="bce+0.1*msml")
        assert (df2[df2["loss"] == "bce+0.1*msml"]["delta"] == 0).all()
        # written as in a suite's grid (spaces allowed there): the same reference
        spaced = build(db, reference="bce + 0.1*msml")
        assert (spaced[spaced["loss"] == "bce+0.1*msml"]["delta"] == 0).all()
        shown = display_frame(spaced, reference="bce + 0.1*msml")
        delta_col = shown.filter(like="Δ vs").iloc[:, 0]
        assert (delta_col[shown["loss"] == "bce+0.1*msml"] == "ref").all()
    assert "2 failed" in render(df)


def test_runs_with_other_settings_are_kept_apart(tmp_path):
    """Two setups (another lr) in one folder: separate rows, Δ only within a setup."""
    from mlbench.suite import load_suite

    d = tiny_suite(None, tmp_path / "out", EIGHT_RUNS)
    a = load_suite(d, train_keys=False, env={})
    b = load_suite(d, train_keys=False, env={}, overrides=["train.lr=0.01"])
    with ResultsDB(a.output) as db:
        fill(db, a.runs, {"bce": 1.0, "bce+0.1*msml": 2.0}.__getitem__)
        fill(db, b.runs, {"bce": 0.5, "bce+0.1*msml": 0.2}.__getitem__, seed=1)
        df = build(db)
        assert len(df) == 8 and df["setup"].nunique() == 2
        # labelled by the key that differs, not by hashes
        lr = a.config["train"]["lr"]
        assert set(df["setup"]) == {f"train.lr={lr}", "train.lr=0.01"}
        assert (df["seeds"] == 2).all()  # no seed of one setup overwrote the other's
        # within each setup, bce+0.1*msml's Δ is against that setup's bce
        for _, part in df.groupby(["head", "setup"]):
            bce = part[part["loss"] == "bce"]["mean_auc"].iloc[0]
            other = part[part["loss"] == "bce+0.1*msml"]
            assert other["delta"].iloc[0] == pytest.approx(other["mean_auc"].iloc[0] - bce)
    assert "setup" in render(df) and "train.lr=0.01" in render(df)


def test_setup_labels_name_what_differs():
    from mlbench.leaderboard.analysis import setup_labels

    base = {"train": {"lr": 0.1, "epochs": 2}, "eval": {"bootstrap": 0}, "loss": "bce"}
    other = {"train": {"lr": 0.1, "epochs": 3}, "eval": {"bootstrap": 0}, "loss": "msml"}
    extra = {**base, "model": {"no_finding": True}}
    labels = setup_labels({"a": base, "b": other, "c": extra})
    assert labels == {"a": "model.no_finding=-, train.epochs=2",
                      "b": "model.no_finding=-, train.epochs=3",
                      "c": "model.no_finding=true, train.epochs=2"}
    assert setup_labels({"a": base}) == {"a": "a"}  # one setup: nothing differs
    many = {h: {"x": {str(k): h == str(k) for k in range(5)}} for h in "01234"}
    labels = setup_labels(many, most=3)
    assert len(set(labels.values())) == 5 and all(v.endswith(f"[{h}]") for h, v in labels.items())


def test_text_columns_of_the_real_findings_are_distinct():
    # Pneumonia and Pneumothorax both start with "Pneu": one column overwrote the other
    from mlbench.data import FINDINGS as REAL

    df = pd.DataFrame([{"backbone": "b", "head": "h", "loss": "bce", "seeds": 1, "failed": 0,
                        "mean_auc": 0.7, "std": math.nan, "ci_lo": 0.6, "ci_hi": 0.8,
                        "map": 0.2, "delta": 0.0, "p": math.nan,
                        **{f: 0.5 + i / 100 for i, f in enumerate(REAL)}}])
    shown = display_frame(df)
    per_class = shown.columns[-len(REAL):]
    assert len(set(per_class)) == len(REAL) == 14
    values = [float(v) for v in shown.iloc[0, -len(REAL):]]
    assert values == pytest.approx([0.5 + i / 100 for i in range(14)])
