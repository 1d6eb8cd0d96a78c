"""The HTML report is one self-contained file with its plots inside."""

from __future__ import annotations

import base64
import re

from mlbench.report import write_report


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
