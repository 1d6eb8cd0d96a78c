"""The tuning plan: spaces, the equal budget, the draw, stage sizes, run ids (no training)."""

from __future__ import annotations

import pytest

from mlbench.suite import SuiteError, load_suite, run_id
from tests.helpers import TUNED, fake_selection, tiny_suite


def _tuned(tmp_path, *layers, **changes) -> dict:
    """The tuned tiny suite (TUNED) into tmp_path/out; each test gives its `tune:` section."""
    return tiny_suite(None, tmp_path / "out", TUNED, *layers, **changes)


def _plan(tmp_path, *layers, **changes):
    suite = load_suite(_tuned(tmp_path, *layers, **changes), train_keys=False)
    return suite, suite.plan


def test_every_loss_gets_the_same_budget_even_with_extra_values(tmp_path):
    losses = {"grid.loss": ["bce", "bce+{alpha}*msml", "asl"]}
    suite, plan = _plan(tmp_path, losses, tune={
        "train": {"lr": [1e-3, 3e-3], "weight_decay": [0.0, 1e-4]},
        "loss": {"bce+{alpha}*msml": {"alpha": [0.05, 0.1, 0.3]},
                 "asl": {"gamma_neg": [2, 4]}}})
    sizes = {c.loss: (len(c.settings), c.budget, c.space) for c in plan.cells}
    assert sizes == {"bce": (4, 4, 4), "bce+{alpha}*msml": (4, 4, 12), "asl": (4, 4, 8)}
    bce = next(c for c in plan.cells if c.loss == "bce")
    assert [s.values for s in bce.settings] == [
        {"train.lr": 1e-3, "train.weight_decay": 0.0}, {"train.lr": 1e-3, "train.weight_decay": 1e-4},
        {"train.lr": 3e-3, "train.weight_decay": 0.0}, {"train.lr": 3e-3, "train.weight_decay": 1e-4}]
    comp = next(c for c in plan.cells if c.loss == "bce+{alpha}*msml")
    for s in comp.settings:  # the placeholder filled in, the train values set
        cfg = s.runs[0].config
        assert cfg["loss"] == f"bce+{s.values['alpha']!r}*msml"
        assert cfg["train"]["lr"] == s.values["train.lr"]
        assert cfg["tune"] == {"loss": "bce+{alpha}*msml", "values": s.values}
    asl = next(c for c in plan.cells if c.loss == "asl")
    assert all(s.runs[0].config["loss"] == {"name": "asl", "gamma_neg": s.values["gamma_neg"]}
               for s in asl.settings)
    # the draw is seeded: the same suite draws the same settings, another seed may not
    again = load_suite(_tuned(tmp_path, losses, tune=suite.config["tune"]),
                       train_keys=False).plan
    assert [s.index for s in again.cells[1].settings] == [s.index for s in comp.settings]


def test_draw_is_stable_when_a_value_is_added(tmp_path):
    tune = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}}}
    _, before = _plan(tmp_path, tune=tune)
    tune["train"]["lr"].append(1e-2)
    _, after = _plan(tmp_path, tune=tune)
    old = {s.runs[0].id for c in before.cells for s in c.settings}
    new = {s.runs[0].id for c in after.cells for s in c.settings}
    bce_old = {s.runs[0].id for s in before.cells[0].settings}
    assert bce_old <= new  # a loss trying its whole space keeps every old setting
    assert len(new) == 6 and len(old) == 4


def test_budget_rules(tmp_path):
    tune = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}},
            "budget": 3}
    with pytest.raises(SuiteError, match=r"`tune.budget`: loss 'bce' has 2 setting\(s\), fewer"):
        _plan(tmp_path, tune=tune)
    tune["budget"] = 1
    _, plan = _plan(tmp_path, tune=tune)
    assert [len(c.settings) for c in plan.cells] == [1, 1]
    tune["budget_per_loss"] = {"bce + {alpha}*msml": 3}
    _, plan = _plan(tmp_path, tune=tune)
    assert [(c.loss, c.budget) for c in plan.cells] == [("bce", 1), ("bce+{alpha}*msml", 3)]
    tune["budget_per_loss"] = {"msml": 1}
    with pytest.raises(SuiteError, match="`tune.budget_per_loss.msml` is not a `grid.loss` entry"):
        _plan(tmp_path, tune=tune)


@pytest.mark.parametrize("tune, losses, match", [
    ({"loss": {"msml": {"x": [1]}}}, ("bce",), r"`tune.loss.msml` is not a `grid.loss` entry"),
    ({"train": {"lrr": [1e-3]}}, ("bce",), r"unknown key `tune.train.lrr`"),
    ({"train": {"lr": []}}, ("bce",), r"`tune.train.lr` is an empty list"),
    ({"train": {"lr": [1e-3, 1e-3]}}, ("bce",), r"lists 0.001 twice"),
    ({"train": {"batch_size": [8, 0]}}, ("bce",), r"`tune.train\[1\].batch_size` must be >= 1"),
    ({"train": {"lr": [1e-3]}}, ("bce+{a}*msml",), r"no values for \{a\}"),
    ({}, ("bce+{a}*msml",), r"has placeholders; give their values in `tune.loss`"),
    ({"loss": {"bce+0.1*msml": {"alpha": [1]}}}, ("bce+0.1*msml",), r"as placeholders"),
    ({"loss": {"bce+{a}*msml": {"a": ["x"]}}}, ("bce+{a}*msml",), r"must be a number"),
    ({"loss": {"bce+{a}*msml": {"a": [1], "b": [2]}}}, ("bce+{a}*msml",),
     r"`tune.loss.bce\+\{a\}\*msml.b` is not a placeholder"),
    ({"train": {"augment": [False, {"hflip": 2}]}}, ("bce",), r"`tune.train.augment\[1\].hflip`"),
    ({"stages": 3, "train": {"lr": [1e-3]}}, ("bce",), r"`tune.stages` must be one of \[1, 2\]"),
])
def test_bad_tune_names_the_key(tmp_path, tune, losses, match):
    with pytest.raises(SuiteError, match=match):
        load_suite(_tuned(tmp_path, {"grid.loss": list(losses)}, tune=tune))


@pytest.mark.parametrize("stages", [1, 2])
def test_stage_sizes(tmp_path, stages):
    tune = {"train": {"lr": [1e-3, 3e-3, 1e-2]}, "stages": stages,
            "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}}}
    suite, plan = _plan(tmp_path, tune=tune, seeds=[0, 1, 2, 3])
    b, s = 3, 4
    first, second = plan.stage_one(), plan.stage_two(fake_selection(plan, pick=1))
    assert suite.runs == first
    if stages == 2:
        assert len(first) == 2 * b and {r.seed for r in first} == {0}
        assert len(second) == 2 * (s - 1) and {r.seed for r in second} == {1, 2, 3}
        assert len(first) + len(second) == plan.total_runs() == 2 * (b + s - 1)
        assert not {r.id for r in first} & {r.id for r in second}
    else:
        assert len(first) == plan.total_runs() == 2 * b * s and second == []


def test_run_ids_are_the_resolved_configs(tmp_path):
    suite, plan = _plan(tmp_path, tune={"train": {"lr": [1e-3, 3e-3]},
                                        "loss": {"bce+{alpha}*msml": {"alpha": [0.3]}}})
    plain = load_suite(_tuned(tmp_path, tune={},
                              grid={"backbone": ["test_resnet"], "head": ["linear"],
                                    "loss": ["bce", "bce+0.3*msml"]}), train_keys=False)
    assert plain.plan is None and all("tune" not in r.config for r in plain.runs)
    tuned = {(r.config["loss"], r.config["train"]["lr"], r.seed): r.id for r in plan.every_run()}
    for r in plain.runs:  # lr 1e-3 is the suite's own: the same run, the same id
        assert tuned[(r.config["loss"], 1e-3, r.seed)] == r.id
    cfg = plan.every_run()[0].config
    assert run_id(cfg) == run_id({k: v for k, v in cfg.items() if k != "tune"})


def test_plan_none_without_values(tmp_path):
    suite = load_suite(_tuned(tmp_path, tune={"stages": 1}, grid={
        "backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce"]}), train_keys=False)
    assert suite.plan is None and len(suite.runs) == 3


RECIPE = {"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "lr": 0.1}]}
RECIPE_LABEL = "bce:1>aucm[lr=0.1]"


def test_a_recipe_tunes_its_last_stages_loss(tmp_path):
    suite, plan = _plan(tmp_path, {"grid.loss": ["bce", RECIPE], "train.epochs": 2}, tune={
        "train": {"lr": [1e-3, 3e-3]}, "loss": {RECIPE_LABEL: {"margin": [0.6, 1.0]}}})
    recipe = next(c for c in plan.cells if c.loss == RECIPE_LABEL)
    assert (len(recipe.settings), recipe.space) == (2, 4)  # bce's 2 lrs: the budget
    for s in recipe.settings:
        stages = s.runs[0].config["loss"]["stages"]
        assert stages[0] == {"loss": "bce", "epochs": 1}  # the warm-up untouched
        assert stages[1] == {"loss": {"name": "aucm", "margin": s.values["margin"]}, "lr": 0.1}
        assert s.runs[0].config["train"]["lr"] == s.values["train.lr"]
    ids = {r.id for s in recipe.settings for r in s.runs.values()}
    assert len(ids) == sum(len(s.runs) for s in recipe.settings)  # distinct per setting, seed


@pytest.mark.parametrize("params, match", [
    ({"epochs": [1, 2]}, r"`tune.loss.bce:1>aucm\[lr=0.1\].epochs`: a recipe tunes keyword"),
    ({"name": ["bce"]}, r"not `name`"),
])
def test_a_recipe_tunes_only_its_losss_arguments(tmp_path, params, match):
    with pytest.raises(SuiteError, match=match):
        _plan(tmp_path, {"grid.loss": ["bce", RECIPE], "train.epochs": 2},
              tune={"train": {"lr": [1e-3, 3e-3]}, "loss": {RECIPE_LABEL: params}})


def test_a_recipe_ending_in_a_sum_cannot_be_tuned(tmp_path):
    recipe = {"stages": [{"loss": "bce", "epochs": 1}, {"loss": "bce+0.1*msml"}]}
    with pytest.raises(SuiteError, match=r"last stage's loss, which must be one loss"):
        _plan(tmp_path, {"grid.loss": ["bce", recipe], "train.epochs": 2},
              tune={"train": {"lr": [1e-3]}, "loss": {"bce:1>(bce+0.1*msml)": {"x": [1]}}})
