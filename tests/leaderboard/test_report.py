"""The HTML report is one self-contained file with its plots inside."""

from __future__ import annotations

import base64
import re

from mlbench.leaderboard.report import write_report


def test_report_self_contained(filled, tmp_path):
    out, _ = filled
    dest = write_report(out, tmp_path / "r.html")
    html = dest.read_text()
    srcs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", html)
    assert srcs, "no images in the report"
    assert all(s.startswith("data:image/png;base64,") for s in srcs), srcs
    for s in srcs:  # each embedded image is a real PNG
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in html and "<script" not in html and "http" not in html
    assert len(srcs) == 1 + 2 + 2  # heat map, ROC per backbone/head, curves per backbone/head
    assert "Leaderboard" in html and "bce+0.1*msml" in html and "<table>" in html


def test_every_loss_its_own_colour_and_style_reference_marked():
    from mlbench.leaderboard.report import loss_styles

    losses = [f"loss{i}" for i in range(25)] + ["bce"]
    styles = loss_styles(losses, "bce")
    keys = {(tuple(v["color"]) if not isinstance(v["color"], str) else v["color"], v["ls"])
            for v in styles.values()}
    assert len(keys) == len(losses)  # no two losses look alike (14+ losses: issue 13)
    assert styles["bce"]["color"] == "black" and styles["bce"]["lw"] > styles["loss0"]["lw"]


def test_report_plots_auc_against_cost_when_train_time_is_recorded(tmp_path):
    import numpy as np

    from tests.leaderboard.test_statistics import make_db

    def scores(t, rng, groups):
        return {(loss, s): 1 / (1 + np.exp(-(t + rng.normal(0, 1, t.shape))))
                for loss in ("bce", "msml") for s in (0, 1)}

    extra = {(loss, s): [("train_seconds", "", 10.0 * (1 + (loss == "msml")), None, None)]
             for loss in ("bce", "msml") for s in (0, 1)}
    make_db(tmp_path / "results.db", scores, n=400, patients=100, extra=extra)
    html = write_report(tmp_path, tmp_path / "r.html").read_text()
    assert "Mean AUC against cost" in html and "2.00×" in html
    assert "95% CI and p:" in html  # the footnote under the table
