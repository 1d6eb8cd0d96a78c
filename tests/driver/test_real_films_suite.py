"""suites/real-films.yaml on the real films of ../shared/data/nih-real-256 (skipped when the
folder is absent): the suite loads as documented, and a reduced version of it (2 losses x 2
seeds, 1 epoch of 2 steps, 16 px) runs end to end and shows its three test sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.conftest import shared_data
from tests.helpers import cli

REAL = shared_data("nih-real-256")
SUITE = Path(__file__).resolve().parents[2] / "suites" / "real-films.yaml"
pytestmark = pytest.mark.skipif(not (REAL / "Data_Entry_2017_v2020.csv").is_file(),
                                reason=f"the real films are not here ({REAL})")


def test_suite_loads_as_documented(tmp_path):
    from mlbench.suite import load_suite

    suite = load_suite(SUITE, env={"NIH_ROOT": str(REAL), "MLBENCH_OUT": str(tmp_path)})
    assert len(suite.runs) == 15
    assert {r.loss for r in suite.runs} >= {"bce", "msml", "bce+0.1*msml"}
    assert sorted({r.seed for r in suite.runs}) == [0, 1, 2]
    assert [e["name"] for e in suite.config["eval"]["test_sets"]] == ["nih", "nih-expert",
                                                                      "nih-bbox"]
    ds = suite.dataset
    assert ds["image_size"] == 64 and ds["missing"] == "skip"
    assert ds["cache_dir"] == f"{tmp_path}/cache"  # never inside the shared data folder


@pytest.mark.slow
def test_reduced_study_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NIH_ROOT", str(REAL))
    monkeypatch.setenv("MLBENCH_OUT", str(tmp_path / "out"))
    code, _, err = cli(capsys, "run", str(SUITE), "--no-progress", "--workers", "1",
                       "--set", "seeds=[0,1]", "--set", "grid.loss=[bce,msml]",
                       "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
                       "--set", "dataset.image_size=16", "--set", "eval.bootstrap=0")
    assert code == 0, err
    code, text, _ = cli(capsys, "leaderboard", str(tmp_path / "out"), "--format", "json")
    sets = {t["name"]: t for t in json.loads(text)["test_sets"]}
    assert list(sets) == ["nih", "nih-expert", "nih-bbox"]
    assert sets["nih"]["info"]["images"] == 563 and sets["nih"]["info"]["patients"] == 194
    assert sets["nih-expert"]["info"]["images"] == 36
    assert any("62 of the 880 images with boxes" in n for n in sets["nih-bbox"]["info"]["notes"])
    assert all(len([r for r in t["rows"] if r.get("seeds")]) == 2 for t in sets.values())
