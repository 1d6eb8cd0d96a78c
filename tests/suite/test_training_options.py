"""Suite keys for the losses of issue 27: a multi-stage recipe as a grid.loss entry
(``{stages: [{loss: bce, epochs: 2}, {loss: aucm}]}``), ``train.sampler`` and
``model.no_finding``: checked with one-line errors, in the run id only when they change what a
run computes (run ids of suites without them unchanged), shown in the labels."""

from __future__ import annotations

import pytest

from mlbench.leaderboard.analysis import setup_labels, setup_of
from mlbench.suite import SuiteError, check_names, load_suite, loss_label
from tests.helpers import tiny_suite

RECIPE = {"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "lr": 0.1}]}


def _load(tmp_path, **changes):
    return load_suite(tiny_suite(None, tmp_path / "out", **changes), env={})


def _ids(tmp_path, **changes):
    return [r.id for r in _load(tmp_path, **changes).runs]


def test_a_recipe_is_a_grid_entry_with_its_label_and_its_own_id(tmp_path):
    suite = _load(tmp_path, **{"grid.loss": ["bce", RECIPE]})
    bce, recipe = suite.runs
    assert recipe.loss == "bce:1>aucm[lr=0.1]" and bce.loss == "bce"
    assert recipe.config["loss"] == {"stages": [{"loss": "bce", "epochs": 1},
                                                {"loss": "aucm", "lr": 0.1}]}
    assert recipe.id != bce.id
    other = {"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "lr": 0.2}]}
    assert _ids(tmp_path, **{"grid.loss": [other]}) != [recipe.id]  # the recipe is identity
    check_names(suite)  # every stage's loss built and tried
    composite = {"stages": [{"loss": "bce+0.1*msml", "epochs": 1}, {"loss": "aucm"}]}
    assert loss_label(composite) == "(bce+0.1*msml):1>aucm"


@pytest.mark.parametrize("entry, message", [
    ({"stages": [{"loss": "bce", "epochs": 1}]}, r"`grid.loss\[0\].stages` must be a list of "
                                                 r"at least 2 stages"),
    ({"stages": [{"loss": "bce"}, {"loss": "aucm"}]}, r"`grid.loss\[0\].stages\[0\].epochs` must "
                                                      r"be an int >= 1 \(only the last stage"),
    ({"stages": [{"loss": "bce", "epochs": 1, "optimizer": "sgd"}, {"loss": "aucm"}]},
     r"unknown key\(s\) \['optimizer'\]; a stage's keys: \['loss', 'epochs', 'lr', 'schedule'\]"),
    ({"stages": [{"epochs": 1}, {"loss": "aucm"}]}, r"stages\[0\]` must be a mapping with `loss`"),
    ({"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "lr": -1}]},
     r"stages\[1\].lr` must be a number > 0"),
    ({"stages": [{"loss": "bce", "epochs": 2}, {"loss": "aucm"}]},
     r"the stages' epochs \[2, None\] must leave at least one epoch of train.epochs \(2\)"),
    ({"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "epochs": 2}]},
     r"must add up to train.epochs \(2\)"),
    ({"stages": [{"loss": "bce", "epochs": 1}, {"loss": {"stages": []}}]},
     r"a stage's loss cannot itself be a recipe"),
    ({"stages": [{"loss": "bce", "epochs": 1}], "x": 1}, r"a recipe has the one key `stages`"),
])
def test_a_bad_recipe_is_one_clear_error(tmp_path, entry, message):
    with pytest.raises(SuiteError, match=message) as info:
        _load(tmp_path, **{"grid.loss": [entry]})
    assert "\n" not in str(info.value)


def test_a_recipe_with_a_bad_stage_setting_fails_the_preflight(tmp_path):
    entry = {"stages": [{"loss": "bce", "epochs": 1}, {"loss": "aucm", "schedule": "linear"}]}
    with pytest.raises(SuiteError, match=r"`grid.loss\[0\]` \(bce:1>aucm\[schedule=linear\]\): "
                                         r"Expected `schedule`"):
        check_names(_load(tmp_path, **{"grid.loss": [entry]}))


def test_sampler_and_no_finding_enter_the_id_only_when_set(tmp_path):
    base = _ids(tmp_path)
    assert _ids(tmp_path, **{"train.sampler": "random"}) == base  # the default, spelled out
    assert _ids(tmp_path, **{"model.no_finding": False}) == base
    aware = _ids(tmp_path, **{"train.sampler": "class_aware"})
    healthy = _ids(tmp_path, **{"model.no_finding": True})
    assert len({*base, *aware, *healthy}) == 3 * len(base)
    run = _load(tmp_path).runs[0]
    assert "sampler" not in run.config["train"] and "no_finding" not in run.config["model"]
    both = _load(tmp_path, **{"train.sampler": "class_aware", "model.no_finding": True}).runs[0]
    assert both.config["train"]["sampler"] == "class_aware" and both.config["model"]["no_finding"]


def test_the_setup_label_shows_sampler_and_no_finding(tmp_path):
    """Runs of one output folder with and without the options: the leaderboard's setup labels
    (the config keys that differ) name them; the hash of a run without them is unchanged."""
    plain = _load(tmp_path).runs[0].config
    both = _load(tmp_path, **{"train.sampler": "class_aware",
                              "model.no_finding": True}).runs[0].config
    labels = setup_labels({setup_of(plain): plain, setup_of(both): both})
    assert labels[setup_of(both)] == "model.no_finding=true, train.sampler=class_aware"
    assert labels[setup_of(plain)] == "model.no_finding=-, train.sampler=-"


def test_an_unknown_sampler_is_one_clear_error(tmp_path):
    with pytest.raises(SuiteError, match=r"`train.sampler` must be one of \[None, 'random', "
                                         r"'class_aware'\], got 'balanced'"):
        _load(tmp_path, **{"train.sampler": "balanced"})


def test_only_selects_a_recipe_by_its_label(tmp_path):
    from mlbench.suite import filter_runs, parse_only

    label = "bce:1>aucm[lr=0.1,schedule=step]"
    only = parse_only([f"loss={label},bce", "seed=0"])
    assert only == {"loss": [label, "bce"], "seed": ["0"]}
    assert parse_only([f"loss=msml,{label}"]) == {"loss": ["msml", label]}
    entry = {"stages": [{"loss": "bce", "epochs": 1},
                        {"loss": "aucm", "lr": 0.1, "schedule": "step"}]}
    suite = _load(tmp_path, **{"grid.loss": ["msml", entry]})
    assert [r.loss for r in filter_runs(suite.runs, parse_only([f"loss={label}"]))] == [label]
