"""The two-stage AUC-M recipe through the whole harness (issue 27): BCE for one epoch, then
AUC-M with PESG for two, with the class-aware sampler and the "No Finding" output. A run
killed (SIGKILL, ``MLBENCH_FAULT=after_epoch:1:kill``) inside the AUC-M stage resumes on the
next command and stores exactly what the uninterrupted run stores; the stored scores are the
14 findings (the "No Finding" output trained, not scored)."""

from __future__ import annotations

import signal

import pytest

from mlbench.data import FINDINGS
from mlbench.db import ResultsDB
from tests.helpers import (
    cli,
    finish,
    spawn,
    stored_results,
    tiny_suite,
    trained,
    write_suite,
)

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]

RECIPE = {"stages": [{"loss": "bce", "epochs": 1},
                     {"loss": "aucm", "lr": 0.1, "schedule": "step"}]}


def _suite(sim_root, folder):
    return write_suite(folder / "suite.yaml", tiny_suite(
        sim_root, folder / "out", **{"grid.loss": [RECIPE]},
        train={"epochs": 3, "sampler": "class_aware"}, model={"no_finding": True}))


@pytest.mark.slow
def test_recipe_killed_inside_the_aucm_stage_resumes_bit_identical(sim_root, tmp_path, capsys):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    ref.mkdir(), cut.mkdir()
    code, _, err = cli(capsys, "run", _suite(sim_root, ref), "--no-progress")
    assert code == 0, err
    reference = stored_results(ref / "out")
    (run,) = reference.values()
    assert run["status"] == "finished" and len(run["epochs"]) == 3
    with ResultsDB(ref / "out", readonly=True) as db:
        scores, targets = db.predictions(next(iter(reference)))
    assert scores.shape[1] == targets.shape[1] == len(FINDINGS)  # No Finding: not scored
    assert {m[1] for m in run["metrics"] if m[0] == "auc"} == set(FINDINGS)
    assert all(len(e["val_auc"]) == len(FINDINGS) for e in run["epochs"] if "val_auc" in e)

    path = _suite(sim_root, cut)
    proc = spawn("run", path, "--no-progress",
                 env={"MLBENCH_FAULT": f"after_epoch:1:kill:{tmp_path / 'killed'}"})
    code, _, err = finish(proc)
    assert code in (-signal.SIGKILL, 3), err  # the in-process worker, or a worker process
    assert (tmp_path / "killed").exists()
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 0, err
    assert stored_results(cut / "out") == reference
    assert set(trained(cut / "out").values()) == {1}
    with ResultsDB(cut / "out", readonly=True) as db:  # it went on from epoch 1's last.pt
        assert [e for e in db.events() if e["status"] == "resumed"]
