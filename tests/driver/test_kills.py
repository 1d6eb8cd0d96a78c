"""Killed, interrupted, terminated: the next run resumes and ends bit-identical to an
uninterrupted one, each run stored once, the database intact (issue 15: the cases that hold,
and SIGTERM handled like Ctrl-C). A killed `data sim`: tests/data/test_sim_folder.py."""

from __future__ import annotations

import os
import signal

import pytest

from tests.helpers import (
    cli,
    error_lines,
    finish,
    integrity,
    spawn,
    statuses,
    stored_results,
    tiny_suite,
    trained,
    wait_for,
    write_suite,
)

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def _suite(sim_root, tmp_path):
    return write_suite(tmp_path / "suite.yaml", tiny_suite(sim_root, tmp_path / "out"))


def _resume(capsys, path, out, reference):
    """Run the same command again: it finishes, equal to the reference, each run stored once."""
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 0, err
    assert stored_results(out) == reference
    assert set(trained(out).values()) == {1}
    assert integrity(out) == "ok"


@pytest.mark.slow
def test_kill_9_of_the_driver_resumes_bit_identical(sim_root, tmp_path, capsys, reference):
    path, out, hold = _suite(sim_root, tmp_path), tmp_path / "out", tmp_path / "hold"
    proc = spawn("run", path, "--no-progress", hold=hold)
    run_id = wait_for(hold, proc).split()[1]  # held after epoch 0's checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert statuses(out)[run_id] == "running"  # left by the dead driver: reset on the rerun
    assert integrity(out) == "ok"
    _resume(capsys, path, out, reference)


@pytest.mark.slow
def test_kill_9_of_a_worker_is_one_line_and_resumes(sim_root, tmp_path, capsys, reference):
    path, out, hold = _suite(sim_root, tmp_path), tmp_path / "out", tmp_path / "hold"
    proc = spawn("run", path, "--no-progress", "--workers", "2", hold=hold)
    pid, run_id = wait_for(hold, proc).split()
    assert int(pid) != proc.pid  # a worker process, not the driver
    os.kill(int(pid), signal.SIGKILL)
    code, _, err = finish(proc)
    assert code == 3, err  # a worker died (the CLI's exit codes)
    (line,) = error_lines(err)
    assert line.startswith("error: worker ") and "killed by SIGKILL" in line
    assert f"its run(s) {run_id} are pending again" in line and "run the same command" in line
    assert statuses(out)[run_id] == "pending"
    _resume(capsys, path, out, reference)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_give_the_run_back_and_say_so(sim_root, tmp_path, capsys,
                                                         reference, sig, code, word):
    path, out, hold = _suite(sim_root, tmp_path), tmp_path / "out", tmp_path / "hold"
    proc = spawn("run", path, "--no-progress", hold=hold)
    run_id = wait_for(hold, proc).split()[1]
    proc.send_signal(sig)
    got, _, err = finish(proc)
    assert got == code, err
    assert error_lines(err) == [f"{word}: finished runs are kept in {out}/results.db; run the "
                                "same command again to resume"]
    assert statuses(out)[run_id] == "pending"  # given back at once, not left running
    _resume(capsys, path, out, reference)
