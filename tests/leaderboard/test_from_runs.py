"""The leaderboard and the report of real tiny runs (issue 15): names with markup are escaped
in the HTML, a loss with fewer finished seeds than the others is marked incomplete."""

from __future__ import annotations

import pytest

from tests.helpers import cli, integrity, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def test_script_in_names_is_escaped_in_the_html(sim_root, tmp_path, capsys):
    evil = "<script>alert(1)</script>"
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, tmp_path / "out", name=evil,
                                                     seeds=[0]))
    assert cli(capsys, "run", path, "--no-progress")[0] == 0
    assert cli(capsys, "report", str(tmp_path / "out"), "-o", str(tmp_path / "r.html"))[0] == 0
    assert cli(capsys, "leaderboard", str(tmp_path / "out"), "--format", "html", "--out",
               str(tmp_path / "lb.html"))[0] == 0
    for page in ("r.html", "lb.html"):
        html = (tmp_path / page).read_text()
        assert "<script>alert" not in html, page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (tmp_path / "r.html").read_text()
    assert integrity(tmp_path / "out") == "ok"


def test_a_loss_with_fewer_finished_seeds_is_marked_incomplete(sim_root, tmp_path, capsys):
    # the leaderboard ranked a loss with 1 of 3 seeds done as if it were complete
    out = tmp_path / "out"
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, out, seeds=[0, 1, 2]))
    assert cli(capsys, "run", path, "--no-progress", "--only", "loss=bce")[0] == 0
    assert cli(capsys, "run", path, "--no-progress", "--only", "loss=msml",
               "--only", "seed=0")[0] == 0
    code, text, _ = cli(capsys, "leaderboard", str(out), "--no-per-class")
    assert code == 0
    rows = {line.split()[0]: line for line in text.splitlines() if line.split()[:1] in
            (["bce"], ["msml"])}
    assert "1 incomplete" in rows["msml"] and "incomplete" not in rows["bce"]
