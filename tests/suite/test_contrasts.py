"""`analysis.primary` / `analysis.margin`: parsed, checked at load naming the key, and no
part of any run id."""

from __future__ import annotations

import re

import pytest

from mlbench.suite import SuiteError, load_suite, parse_contrast
from tests.helpers import tiny_suite


def test_parse():
    c = parse_contrast("bce + 0.1*msml  vs bce @ densenet121/linear")
    assert (c.a, c.b, c.backbone, c.head) == ("bce+0.1*msml", "bce", "densenet121", "linear")
    assert c.applies("densenet121", "linear") and not c.applies("resnet50", "linear")
    assert parse_contrast("msml vs bce").label == "msml vs bce"


@pytest.mark.parametrize("primary, margin, where", [
    (["msml vs zlpr"], None, "analysis.primary[0]"),
    (["msml bce"], None, "analysis.primary[0]"),
    (["bce vs msml", "msml vs msml"], None, "analysis.primary[1]"),
    (["msml vs bce @ nope"], None, "analysis.primary[0]"),
    (["msml vs bce"], 0.7, "analysis.margin"),
    (["msml vs bce"], -0.1, "analysis.margin"),
])
def test_bad_analysis_names_the_key(tmp_path, primary, margin, where):
    with pytest.raises(SuiteError, match=re.escape(f"`{where}")):
        load_suite(tiny_suite(None, tmp_path, analysis={"primary": primary, "margin": margin}),
                   train_keys=False)


def test_not_part_of_run_ids(tmp_path):
    plain = load_suite(tiny_suite(None, tmp_path), train_keys=False)
    primary = load_suite(tiny_suite(None, tmp_path, analysis={
        "primary": ["msml vs bce"], "margin": 0.005}), train_keys=False)
    assert [r.id for r in plain.runs] == [r.id for r in primary.runs]
    assert primary.config["analysis"]["primary"] == ["msml vs bce"]


# ---------------------------------------------------------------- controls (issue 25 item 5)
CONTROLS = {"grid.loss": ["bce", "msml", {"name": "bce", "labels": "shuffled"}]}


@pytest.mark.parametrize("analysis, where", [
    ({"primary": ["msml vs bce"], "expect": {"bce vs msml": "worse"}}, "analysis.expect.bce vs msml"),
    ({"primary": ["msml vs bce"], "expect": {"msml vs bce": "awful"}}, "analysis.expect.msml vs bce"),
    ({"primary": ["msml vs bce"], "expect": {"msml vs bce": "equivalent"}},
     "analysis.expect.msml vs bce"),  # no margin
    ({"primary": ["chance vs bce"]}, "analysis.primary[0]"),
    ({"primary": ["msml vs chance"], "expect": ["worse"]}, "analysis.expect"),
])
def test_bad_expectations_name_the_key(tmp_path, analysis, where):
    with pytest.raises(SuiteError, match=re.escape(f"`{where}")):
        load_suite(tiny_suite(None, tmp_path, **CONTROLS, analysis=analysis), train_keys=False)


def test_expectations_and_chance_contrasts_load(tmp_path):
    from mlbench.suite import expectations

    suite = load_suite(tiny_suite(None, tmp_path, **CONTROLS, analysis={
        "primary": ["msml vs bce", "bce(labels=shuffled) vs chance"], "margin": 0.03,
        "expect": {"msml vs bce": "worse",
                   "bce(labels=shuffled) vs chance": ["equivalent", "inconclusive"]}}),
        train_keys=False)
    assert expectations(suite.config["analysis"]) == {
        "msml vs bce": ("worse",), "bce(labels=shuffled) vs chance": ("equivalent", "inconclusive")}
    assert [r.loss for r in suite.runs] == ["bce", "msml", "bce(labels=shuffled)"]


def test_expectable_verdicts_are_the_verdicts_but_no_test():
    from mlbench.stats.verdicts import VERDICTS
    from mlbench.suite.contrasts import EXPECTABLE

    assert set(EXPECTABLE) == set(VERDICTS) - {"no test"}


@pytest.mark.parametrize("loss, where", [
    ({"name": "bce", "labels": "random"}, "grid.loss[0].labels"),
    ([{"name": "bce", "labels": "shuffled"}, {"name": "msml", "weight": 0.1}], "grid.loss[0]"),
])
def test_label_controls_are_checked(tmp_path, loss, where):
    with pytest.raises(SuiteError, match=re.escape(f"`{where}")):
        load_suite(tiny_suite(None, tmp_path, **{"grid.loss": [loss]}), train_keys=False)


def test_training_labels_take_the_control_off_the_spec():
    from mlbench.suite import training_labels

    assert training_labels({"name": "bce", "labels": "shuffled"}) == ({"name": "bce"}, "shuffled")
    assert training_labels("bce+0.1*msml") == ("bce+0.1*msml", None)
