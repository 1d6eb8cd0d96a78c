"""Calibration (SPEC §5.1): simulated A/A comparisons on real test-split structures reject at
the nominal rate, within [1%, 8%] over >= 400 replicates, seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbench.leaderboard import calibrate as cal

OFFICIAL_TEST_LIST = Path(__file__).resolve().parents[3] / "shared/data/nih-official-split/test_list.txt"
LEADERBOARD = cal.LEADERBOARD


def _check(result):
    assert result["null_tests"] >= 400 and result["replicates"] >= 400
    assert 0.01 <= result["type1"][LEADERBOARD] <= 0.08, result["type1"]
    assert result["power"][LEADERBOARD] > result["type1"][LEADERBOARD]


@pytest.mark.slow
def test_type1_error_on_the_cxr14_sim_split():
    s = cal.sim_test_structure(3000, 0)  # the quickstart's test split (labels, patients)
    _check(cal.simulate(s, replicates=400, losses=3, seeds=2, seed_sd=0.003, seed=0))


@pytest.mark.slow
def test_type1_error_on_a_split_of_the_real_label_table():
    # official test patients (whole film histories) when the list is here, else any patients
    split = OFFICIAL_TEST_LIST if OFFICIAL_TEST_LIST.is_file() else None
    s = cal.real_test_structure(split, patients=150, seed=0)
    assert len(s.groups) / len(set(s.groups)) > 2  # patients with several films
    r = cal.simulate(s, replicates=400, losses=3, seeds=2, seed_sd=0.003, seed=1)
    _check(r)
    assert r["se_ratio"] > 1.05  # clustering by patient matters on this structure


def test_replicates_do_not_depend_on_threads():
    s = cal.sim_test_structure(3000, 0)
    a = cal.simulate(s, replicates=12, losses=3, seeds=2, threads=1)
    b = cal.simulate(s, replicates=12, losses=3, seeds=2, threads=2)
    assert a["type1"] == b["type1"] and a["sd_delta"] == b["sd_delta"]


def test_command_on_a_results_folder(tmp_path, capsys):
    import numpy as np

    from mlbench.cli import main

    from .test_statistics import make_db

    def scores(t, rng, groups):
        return {(loss, s): 1 / (1 + np.exp(-(t + rng.normal(0, 1, t.shape))))
                for loss in ("bce", "msml", "lsep") for s in (0, 1)}

    make_db(tmp_path / "results.db", scores, n=800, patients=200)
    assert main(["calibrate", str(tmp_path), "--replicates", "20"]) == 0
    text = capsys.readouterr().out
    assert "as measured in OUT" in text and LEADERBOARD in text and "type-I error" in text
    assert main(["calibrate"]) == 2
