"""A run killed after an epoch resumes from its checkpoint (last.pt) and ends bit-identical
to an uninterrupted one; best.pt is kept, last.pt removed."""

from __future__ import annotations

import pytest
import yaml

from mlbench.cli import main
from mlbench.db import ResultsDB
from mlbench.train import load_checkpoint, load_training_state
from tests.helpers import stored_results, tiny_suite

pytestmark = pytest.mark.scale


@pytest.mark.slow
def test_run_killed_after_an_epoch_resumes_with_the_same_result(tmp_path, sim_root,
                                                                 monkeypatch, capsys):
    suite = tiny_suite(sim_root, tmp_path / "killed", **{"grid.loss": ["msml"]})
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    # the uninterrupted reference
    assert main(["run", str(path), "--no-progress", "--out", str(tmp_path / "whole")]) == 0

    # as a SIGKILL after epoch 0's checkpoint (a Ctrl-C of this process: pytest survives it)
    monkeypatch.setenv("MLBENCH_FAULT", "after_epoch:0:interrupt")
    assert main(["run", str(path), "--no-progress"]) == 130
    out = tmp_path / "killed"
    with ResultsDB(out) as db:
        (run,) = db.runs()
        assert run["status"] == "pending"
        assert db.events(run["id"])[-1]["detail"] == "interrupted (driver stopped: Ctrl-C)"
    last = out / "checkpoints" / run["id"] / "last.pt"
    assert load_training_state(last)["epoch"] == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["run", str(path), "--no-progress"]) == 0
    with ResultsDB(out) as db:
        events = [(e["status"], e["detail"]) for e in db.events(run["id"])]
        assert ("resumed", "from the checkpoint of epoch 0") in events
        assert [s for s, _ in events].count("finished") == 1
        row = db.get_run(run["id"])
        assert row["device"] == "cpu" and row["attempts"] == 2
        names = {m["name"] for m in db.metrics(run["id"])}
        assert {"train_seconds", "train_images_per_s", "val_mean_auc"} <= names
    assert stored_results(out) == stored_results(tmp_path / "whole")  # bit for bit
    # --keep-checkpoints best (default): best.pt stays, weights-only loadable; last.pt gone
    assert not last.exists()
    assert "model" in load_checkpoint(last.parent / "best.pt")
