"""A run log with garbage bytes never stops a command (one warning naming the file), and
``status`` judges a running run by its driver's pid on this host, as the driver does, not
by its lease alone (issue 24, partial cases)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import pytest

from mlbench.db import ResultsDB
from mlbench.logs import collect, read_run_log, render_text, run_log_path
from tests.helpers import cli, one_error, tiny_suite, write_suite

pytestmark = pytest.mark.reliability

GARBAGE = b"\xff\xfe\x00garbage\x80\n"


def test_read_run_log_skips_garbage_and_says_so_once(tmp_path, caplog):
    path = tmp_path / "abc.jsonl"
    good = json.dumps({"run": "abc", "event": "claimed", "ts": 1.0})
    path.write_bytes(GARBAGE + good.encode() + b"\n" + b'{"run": "abc", "ev')  # last: unfinished
    with caplog.at_level(logging.WARNING, logger="mlbench.worker"):
        assert read_run_log(path) == [json.loads(good)]
        assert read_run_log(path) == [json.loads(good)]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said  # once per file, the unfinished last line not counted
    assert said[0].startswith(f"run log {path} is damaged: 1 line(s) are not UTF-8 JSON")
    assert "delete it" in said[0]


def test_a_run_log_with_garbage_bytes_does_not_abort_the_driver(sim_root, tmp_path, capsys,
                                                                private_core_pool):
    out = tmp_path / "out"
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(sim_root, out))
    code, stdout, _ = cli(capsys, "run", suite, "--dry-run", "--format", "json")
    ids = [r["id"] for r in json.loads(stdout)["runs"]]
    for rid in ids:  # before their first line: the driver reads them while it runs
        run_log_path(out, rid).parent.mkdir(parents=True, exist_ok=True)
        run_log_path(out, rid).write_bytes(GARBAGE)
    code, stdout, err = cli(capsys, "run", suite, "--no-progress")
    assert code == 0, err
    assert "codec can't decode" not in err
    assert "2 finished, 0 failed of 2 runs" in stdout
    for rid in ids:
        assert f"run log {run_log_path(out, rid)} is damaged" in err
        assert [r["event"] for r in read_run_log(run_log_path(out, rid))][-1] == "finished"
    code, stdout, err = cli(capsys, "status", str(out))
    assert code == 0 and "2 finished" in stdout, err


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_status_shows_the_run_of_a_killed_driver_as_interrupted(fake_out, capsys):
    out, ids = fake_out
    before = collect(out)
    [live] = before["running"]  # held by this (live) process, its lease running
    assert not live["stale"] and live["eta_s"] is not None and live["interrupted"] is None
    gone = f"{socket.gethostname()}:{_dead_pid()}"
    with ResultsDB(out) as db:  # as a driver killed by SIGKILL leaves it: lease still valid
        db.conn.execute("UPDATE runs SET worker=? WHERE id=?", (gone, ids["running"]))
        [row] = db.runs("running")
        assert row["lease_until"] > before["time"] + 60
    st = collect(out)
    [run] = st["running"]
    assert run["stale"] and run["eta_s"] is None
    assert run["interrupted"] == f"driver {gone} is gone"
    # the suite's ETA counts it as pending (the next run gives it back), not as in flight
    assert st["eta_s"] == pytest.approx(3 * st["mean_run_s"], abs=1)
    text = render_text(st)
    assert f"- (driver {gone} is gone)" in text
    assert "1 run(s) interrupted (their driver is gone, not running): run the same command " \
        "again to resume them: python -m mlbench run SUITE --out" in text
    # another host's pid means nothing here: judged by its lease, as the driver does
    with ResultsDB(out) as db:
        db.conn.execute("UPDATE runs SET worker=? WHERE id=?", ("otherhost:1", ids["running"]))
    assert not collect(out)["running"][0]["stale"]


def test_status_of_a_missing_folder_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "status", str(tmp_path / "nothing"))
    assert code == 2
    one_error(err)
