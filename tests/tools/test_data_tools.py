"""tools.data_speed and tools.sim_learnability run from tools/ and report (tiny sizes)."""

import os
import subprocess
import sys
from pathlib import Path

from tools import data_speed, sim_learnability

REPO = Path(__file__).resolve().parents[2]


def test_data_speed_reports_decode_and_cache_rates(capsys):
    assert data_speed.main(["--images", "8", "--png-size", "64", "--size", "32",
                            "--min-seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "64px PNG -> 32px" in out and "decode+resize PNG" in out and "cache ds[i] float" in out


def test_sim_learnability_reports_per_class_auc(capsys):
    assert sim_learnability.main(["--images", "60", "--size", "32", "--epochs", "1",
                                  "--width", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1 train loss" in out and "Atelectasis" in out and "mean" in out


def test_tools_run_as_modules_from_the_repo_root():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "tools.data_speed", "--images", "4",
                          "--png-size", "32", "--size", "16", "--min-seconds", "0.01"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "img/s" in res.stdout
