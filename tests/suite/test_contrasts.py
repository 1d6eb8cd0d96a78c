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
