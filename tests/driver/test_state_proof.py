"""Training state that proves what it is, and the partial cases of checkpointing (issue 24
items 1 and 9): a damaged or foreign last.pt is refused, never trained on; orphan
temporaries of dead processes are removed; a full disk while checkpointing leaves the runs
pending with one line naming the disk; a stopped worker whose run was taken over writes
nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from mlbench.db import ResultsDB
from mlbench.driver import worker
from tests.helpers import cli, statuses, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def _interrupted(sim_root, tmp_path, monkeypatch, capsys, name="out", **changes):
    """A one-run suite stopped after epoch 0's checkpoint: (suite path, out, run id, last.pt)."""
    out = tmp_path / name
    path = write_suite(tmp_path / f"{name}.yaml",
                       tiny_suite(sim_root, out, **{"grid.loss": ["bce"]}, **changes))
    monkeypatch.setenv("MLBENCH_FAULT", "after_epoch:0:interrupt")
    assert cli(capsys, "run", path, "--no-progress")[0] == 130
    monkeypatch.delenv("MLBENCH_FAULT")
    (run_id,) = statuses(out)
    return path, out, run_id, out / "checkpoints" / run_id / "last.pt"


def _refused(capsys, path, out, run_id, last, why):
    before = last.read_bytes()
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 1, err
    with ResultsDB(out) as db:
        row = db.get_run(run_id)
        assert row["status"] == "failed" and not db.metrics(run_id)  # never trained on
    first = row["error"].splitlines()[0]
    assert str(last) in first and why in first and "delete it to restart the run" in first
    assert first in err
    assert last.read_bytes() == before  # left for the user to look at


@pytest.mark.slow
def test_a_damaged_last_pt_is_refused_not_resumed(sim_root, tmp_path, monkeypatch, capsys):
    path, out, run_id, last = _interrupted(sim_root, tmp_path, monkeypatch, capsys)
    data = bytearray(last.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 1024] = bytes(1024)  # 1 KB zeroed inside (tensor bytes)
    last.write_bytes(bytes(data))
    _refused(capsys, path, out, run_id, last, "is damaged")


@pytest.mark.slow
def test_another_runs_last_pt_under_this_run_id_is_refused(sim_root, tmp_path, monkeypatch,
                                                          capsys):
    path, out, run_id, last = _interrupted(sim_root, tmp_path, monkeypatch, capsys)
    _, _, _, other = _interrupted(sim_root, tmp_path, monkeypatch, capsys, name="other",
                                  **{"train.lr": 3e-3})
    shutil.copyfile(other, last)
    _refused(capsys, path, out, run_id, last, "belongs to another run")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_orphan_temporaries_of_dead_processes_are_removed(sim_root, tmp_path, monkeypatch,
                                                          capsys):
    path, out, run_id, last = _interrupted(sim_root, tmp_path, monkeypatch, capsys)
    orphan = last.with_name(f"last.pt.tmp-{_dead_pid()}")  # as a kill mid-checkpoint leaves
    orphan.write_bytes(b"half a checkpoint")
    report = out / f"report.html.tmp-{_dead_pid()}"
    report.write_text("half a report")
    live = last.with_name(f"best.pt.tmp-{1}")  # pid 1 is alive: not ours to remove
    live.write_bytes(b"being written")
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 0, err
    assert not orphan.exists() and not report.exists() and live.exists()
    assert "removed 2 temporary file(s) left by killed processes" in err


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_leaves_the_runs_pending(sim_root, tmp_path,
                                                               monkeypatch, capsys):
    out = tmp_path / "out"
    path = write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, out))
    monkeypatch.setenv("MLBENCH_FAULT", "checkpoint:1:enospc")  # ENOSPC at epoch 2's write
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("error: no space left on the disk /")
    assert "checkpoints/" in errors[0] and "is pending and resumes" in errors[0]
    assert set(statuses(out).values()) == {"pending"}  # not failed; the second not started
    monkeypatch.delenv("MLBENCH_FAULT")
    code, _, err = cli(capsys, "run", path, "--no-progress")  # space again: it resumes
    assert code == 0, err
    assert set(statuses(out).values()) == {"finished"}


def test_a_worker_whose_run_was_taken_over_writes_no_checkpoint(tmp_path):
    folder = tmp_path / "abc"
    check = worker.hold_checkpoints(folder)
    check(folder / "last.pt", 0)  # still ours
    worker.hold_checkpoints(folder)  # another attempt took the run
    with pytest.raises(worker.RunTakenOver, match="run abc was taken over by another worker"):
        check(folder / "best.pt", 1)
    shutil.rmtree(folder)  # the run was stored and its checkpoints pruned
    with pytest.raises(worker.RunTakenOver, match="stops without writing last.pt"):
        check(folder / "last.pt", 1)
