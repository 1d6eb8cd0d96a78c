"""tools.train_throughput runs and reports both loops (tiny sizes)."""

import json

from tools import train_throughput as throughput


def test_throughput_script_reports_both_loops(capsys):
    throughput.main(["--backbone", "test_efficientnet", "--head", "linear", "--size", "32",
                     "--batch", "4", "--steps", "2", "--repeats", "2", "--classes", "3"])
    out = json.loads(capsys.readouterr().out)
    assert out["bare_img_s"] > 0 and out["engine_img_s"] > 0 and len(out["engine_all"]) == 2
    assert "overhead_pct_wall" in out and "overhead_pct_cpu" in out


def test_short_fit_mode(capsys):
    throughput.main(["--backbone", "test_efficientnet", "--head", "compact_bilinear", "--fit",
                     "--size", "32", "--batch", "4", "--steps", "2", "--classes", "3"])
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "finished" and out["scores_shape"] == [8, 3]
