from __future__ import annotations

from mlbench.cli import main
from mlbench.data.cache import find_cache


def test_cli_sim_then_prepare(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["data", "sim", str(out), "--images", "20", "--size", "32", "--seed", "3"]) == 0
    assert len(list((out / "images").iterdir())) == 20
    assert find_cache(out, 16) is None
    assert main(["data", "prepare", str(out), "--size", "16", "--workers", "1"]) == 0
    assert find_cache(out, 16) is not None
    assert "cache ready" in capsys.readouterr().out
