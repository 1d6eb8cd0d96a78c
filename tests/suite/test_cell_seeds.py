"""Seeds per cell (`seeds: {default: [...], cells: [{only: {...}, seeds: [...]}]}`): more seeds
for some cells, every other run's id unchanged, tuning on the cell's seeds, one-line errors."""

from __future__ import annotations

import pytest

from mlbench.suite import SuiteError, filter_runs, load_suite, parse_only
from tests.helpers import TUNE, TUNED, cli, fake_selection, one_error, tiny_suite, write_suite

LOSSES = ["bce", "msml", "bce+0.1*msml"]
MORE = {"default": [0, 1, 2],
        "cells": [{"only": {"head": "linear", "loss": ["bce", "msml"]}, "seeds": [0, 1, 2, 3, 4]}]}


def _suite(tmp_path, seeds, **changes) -> dict:
    return tiny_suite(None, tmp_path / "out", **{
        "grid.head": ["linear", "bilinear"], "grid.loss": LOSSES, "seeds": seeds, **changes})


def _load(d, overrides=None):
    return load_suite(d, overrides=overrides, train_keys=False)


def test_cells_get_their_seeds_and_every_other_run_keeps_its_id(tmp_path):
    plain = _load(_suite(tmp_path, [0, 1, 2]))
    more = _load(_suite(tmp_path, MORE))
    assert len(plain.runs) == 6 * 3 and len(more.runs) == 6 * 3 + 2 * 2
    ids = [r.id for r in more.runs]
    assert [i for i in ids if i in {r.id for r in plain.runs}] == [r.id for r in plain.runs]
    added = [r for r in more.runs if r.id not in {p.id for p in plain.runs}]
    assert {(r.head, r.loss, r.seed) for r in added} == {
        ("linear", x, s) for x in ("bce", "msml") for s in (3, 4)}
    assert more.seeds.of("test_resnet", "linear", "msml") == [0, 1, 2, 3, 4]
    assert more.seeds.of("test_resnet", "bilinear", "msml") == [0, 1, 2]
    assert "2 cell(s) [0, 1, 2, 3, 4]: test_resnet/linear/bce, test_resnet/linear/msml" \
        in more.seeds.describe()
    # --only keeps working: seed 4 exists for the two cells only
    kept = filter_runs(more.runs, parse_only(["seed=4"]))
    assert {(r.head, r.loss) for r in kept} == {("linear", "bce"), ("linear", "msml")}
    # --set: a list replaces the mapping; the mapping's keys can be set one by one
    assert len(_load(_suite(tmp_path, MORE), ["seeds=[0]"]).runs) == 6
    two = _load(_suite(tmp_path, MORE), ["seeds.default=[0, 1]"])
    assert len(two.runs) == 4 * 2 + 2 * 5
    assert len(_load(_suite(tmp_path, MORE), ["seeds.cells=[]"]).runs) == 18


def test_a_loss_spec_or_a_spaced_name_matches_its_cell(tmp_path):
    d = _suite(tmp_path, {"default": [0], "cells": [
        {"only": {"loss": "bce + 0.1*msml"}, "seeds": [0, 7]}]})
    suite = _load(d)
    assert {r.seed for r in suite.runs if r.loss == "bce+0.1*msml"} == {0, 7}
    d = _suite(tmp_path, {"default": [0], "cells": [
        {"only": {"loss": [{"name": "asl", "gamma_neg": 2}]}, "seeds": [0, 1]}]},
        **{"grid.loss": ["bce", {"name": "asl", "gamma_neg": 2}]})
    suite = _load(d)
    assert {(r.loss, r.seed) for r in suite.runs} == {
        ("bce", 0), ("asl(gamma_neg=2)", 0), ("asl(gamma_neg=2)", 1)}


def _cells(*entries):
    return {"default": [0, 1, 2], "cells": list(entries)}


@pytest.mark.parametrize("seeds, match", [
    (_cells({"only": {"seed": 1}, "seeds": [0, 1, 2, 3]}),
     r"unknown key `seeds.cells\[0\].only.seed` \(a cell's seeds are its `seeds`\)"),
    (_cells({"only": {"loss": ["bce", "focal"]}, "seeds": [0, 1, 2, 3]}),
     r"`seeds.cells\[0\].only.loss`: 'focal' is not in the grid.*matches no cell.*'msml'"),
    (_cells({"only": {"head": "bilinear"}, "seeds": [0, 1, 2, "3"]}),
     r"`seeds.cells\[0\].seeds\[3\]` must be int, got '3'"),
    (_cells({"only": {"loss": "bce"}, "seeds": [3, 4]}),
     r"`seeds.cells\[0\].seeds` must begin with `seeds.default` \[0, 1, 2\].*write \[0, 1, 2, 3, 4\]"),
    (_cells({"only": {"loss": "bce"}, "seeds": [0, 1, 2, 2]}),
     r"`seeds.cells\[0\].seeds` must begin with .*write \[0, 1, 2\]"),
    (_cells({"only": {"loss": "bce"}, "seeds": [0, 1, 2, 2**32]}),
     r"`seeds.cells\[0\].seeds\[3\]` must be in \[0, 4294967295\]"),
    (_cells({"only": {"loss": "bce"}}), r"`seeds.cells\[0\]` must be a mapping with the keys "
     r"`only` and `seeds`"),
    (_cells({"only": {}, "seeds": [0, 1, 2, 3]}), r"`seeds.cells\[0\].only` must map some of"),
    (_cells({"only": {"loss": "bce"}, "seeds": [0, 1, 2, 3]},
            {"only": {"head": "linear"}, "seeds": [0, 1, 2, 4]}),
     r"cell test_resnet/linear/bce gets seeds \[0, 1, 2, 3\] from `seeds.cells\[0\]` and "
     r"\[0, 1, 2, 4\] from `seeds.cells\[1\]`"),
    ({"cells": []}, r"missing required key `seeds.default`"),
    ({"default": [0], "more": []}, r"unknown key `seeds.more`"),
])
def test_a_bad_override_names_the_key_and_the_fix(tmp_path, seeds, match):
    with pytest.raises(SuiteError, match=match):
        _load(_suite(tmp_path, seeds))


def test_same_seeds_from_two_entries_are_one_list(tmp_path):
    suite = _load(_suite(tmp_path, _cells({"only": {"loss": "bce"}, "seeds": [0, 1, 2, 3]},
                                          {"only": {"head": "linear"}, "seeds": [0, 1, 2, 3]})))
    assert len(suite.runs) == 6 * 3 + 4 * 1


def test_the_command_line_lists_the_cells_and_says_one_line(tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", _suite(tmp_path, MORE))
    code, out, err = cli(capsys, "run", path, "--dry-run")
    assert code == 0, err
    assert "22 runs" in out and "2 cell(s) [0, 1, 2, 3, 4]" in out
    bad = write_suite(tmp_path / "bad.yaml", _suite(tmp_path, _cells(
        {"only": {"loss": "lsep"}, "seeds": [0, 1, 2, 3]})))
    code, _, err = cli(capsys, "run", bad, "--dry-run")
    assert code == 2 and "`seeds.cells[0].only.loss`: 'lsep' is not in the grid" in one_error(err)


def _tuned(tmp_path, seeds, **tune):
    return load_suite(tiny_suite(None, tmp_path / "out", TUNED, seeds=seeds,
                                 tune={**TUNE, **tune}), train_keys=False)


def test_tuning_selects_on_the_first_seed_and_runs_the_cells_seeds(tmp_path):
    comp = "bce+{alpha}*msml"
    more = {"default": [0, 1, 2], "cells": [{"only": {"loss": comp}, "seeds": [0, 1, 2, 3, 4]}]}
    plain = _tuned(tmp_path, [0, 1, 2]).plan
    plan = _tuned(tmp_path, more).plan
    assert plan.seeds == [0, 1, 2]
    assert {c.loss: c.seeds for c in plan.cells} == {"bce": [0, 1, 2], comp: [0, 1, 2, 3, 4]}
    first, second = plan.stage_one(), plan.stage_two(fake_selection(plan, pick=1))
    assert first == plain.stage_one() and {r.seed for r in first} == {0}
    got = {(r.loss, r.seed) for r in second}
    assert got == {("bce", 1), ("bce", 2)} | {(comp, s) for s in (1, 2, 3, 4)}
    assert len(first) + len(second) == plan.total_runs() == (2 + 3 - 1) + (2 + 5 - 1)
    assert {r.id for r in plain.every_run()} <= {r.id for r in plan.every_run()}
    assert {r.id for r in plan.every_run()} - {r.id for r in plain.every_run()} == {
        s.runs[seed].id for c in plan.cells if c.loss == comp for s in c.settings
        for seed in (3, 4)}
    stored = {v["loss"]: v["seeds"] for v in plan.to_json().values()}
    assert stored == {"bce": [0, 1, 2], comp: [0, 1, 2, 3, 4]}  # what selection reads back
    assert f"test_resnet/linear/{comp} [0, 1, 2, 3, 4]" in plan.describe()
    assert "stage 2 = 6 runs" in plan.describe()
    # stages 1: every setting on each of the cell's seeds; fresh_seeds loads
    one = _tuned(tmp_path, more, stages=1).plan
    assert one.total_runs() == len(one.stage_one()) == 2 * 3 + 2 * 5
    assert _tuned(tmp_path, more, fresh_seeds=True).plan.fresh_seeds
