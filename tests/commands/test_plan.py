"""`python -m mlbench plan SUITE` (issue 25 item 1): the design table per family, no training."""

from __future__ import annotations

import pytest

from mlbench.leaderboard import design
from mlbench.suite import load_suite
from tests.helpers import cli, one_error, tiny_suite, write_suite


def _suite(tmp_path, **changes):
    return tiny_suite(None, tmp_path / "out", **{
        "dataset.sim": {"images": 3000, "size": 32, "seed": 0},
        "grid.loss": ["bce", "msml", "bce+0.1*msml", "zlpr"], "seeds": [0, 1, 2], **changes})


def test_families_and_runs(tmp_path):
    suite = load_suite(_suite(tmp_path, analysis={
        "primary": ["bce+0.1*msml vs bce", "msml vs bce"]}, **{"grid.head": ["linear", "bilinear"]}),
        train_keys=False)
    fams = design.families(suite)
    assert [(f.name, f.m) for f in fams] == [("primary", 4), ("exploratory", 2)]
    assert design.runs_at(suite, 3) == 2 * 4 * 3
    # 10 seeds for the primary cells (bce, msml, the composite in both heads), 3 for zlpr
    assert design.runs_at(suite, 10, fams[0].cells) == 2 * 3 * 10 + 2 * 3
    plain = load_suite(_suite(tmp_path), train_keys=False)
    assert [(f.name, f.m) for f in design.families(plain)] == [("all comparisons", 3)]


@pytest.mark.slow
def test_plan_command(tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", _suite(tmp_path, analysis={
        "primary": ["msml vs bce"], "margin": 0.02}))
    code, out, err = cli(capsys, "plan", path, "--seed-sd", "0.01", "--effect", "0.03",
                         "--epoch-hours", "0.5", "--replicates", "100")
    assert code == 0, err
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("primary", "exploratory"))}
    assert set(lines) == {"primary", "exploratory"}
    cells = lines["primary"].split()
    assert cells[-4:-2] == ["12", "12"], lines  # 12 runs; 12 x 2 epochs x 0.5 h
    code, _, err = cli(capsys, "plan", path)
    assert code == 2 and "--seed-sd" in one_error(err)
    code, _, err = cli(capsys, "plan", path, "--seed-sd", "0.001")
    assert code == 2 and "below" in one_error(err)


def test_families_and_runs_count_each_cells_seeds(tmp_path):
    prim = ["bce+0.1*msml vs bce", "msml vs bce"]
    five = {"only": {"loss": ["bce", "msml", "bce+0.1*msml"], "head": "linear"},
            "seeds": [0, 1, 2, 3, 4]}
    suite = load_suite(_suite(tmp_path, analysis={"primary": prim}, **{
        "grid.head": ["linear", "bilinear"], "seeds": {"default": [0, 1, 2], "cells": [five]}}),
        train_keys=False)
    fams = design.families(suite)
    # primary: the composite and msml vs bce in both heads (5 matched seeds in linear, 3 in
    # bilinear); exploratory: zlpr vs bce (3 matched, though bce has 5 in linear)
    assert [(f.name, f.m, f.seeds, f.seeds_text) for f in fams] == [
        ("primary", 4, 3, "3-5"), ("exploratory", 2, 3, "3")]
    assert design.runs_at(suite) == 3 * 5 + 5 * 3
    # 4 seeds for the exploratory family's cells: the 5-seed cells keep theirs
    assert design.runs_at(suite, 4, fams[1].cells) == 3 * 5 + 5 * 4
    assert design.runs_at(suite, 2, fams[1].cells) == 3 * 5 + 5 * 2
    linear = load_suite(_suite(tmp_path, analysis={"primary": [p + " @ test_resnet/linear"
                                                               for p in prim]}, **{
        "grid.head": ["linear", "bilinear"], "seeds": {"default": [0, 1, 2], "cells": [five]}}),
        train_keys=False)
    assert [(f.name, f.m, f.seeds) for f in design.families(linear)] == [
        ("primary", 2, 5), ("exploratory", 4, 3)]
    tuned = load_suite(_suite(tmp_path, analysis={"primary": prim}, **{
        "grid.head": ["linear", "bilinear"], "seeds": {"default": [0, 1, 2], "cells": [five]},
        "tune": {"train": {"lr": [1e-3, 3e-3]}}}), train_keys=False)
    assert design.runs_at(tuned) == tuned.plan.total_runs() == 3 * (2 + 4) + 5 * (2 + 2)
