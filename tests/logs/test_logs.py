"""mlbench.logs: one console format, levels, run files written by workers and the driver."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from mlbench import logs

pytestmark = pytest.mark.observability


@pytest.fixture
def console():
    """The mlbench logger configured into a buffer; restored afterwards."""
    logger = logging.getLogger("mlbench")
    saved = (list(logger.handlers), logger.level, logger.propagate,
             os.environ.get(logs.ENV_LEVEL))
    buf = io.StringIO()
    yield buf
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    if saved[3] is None:
        os.environ.pop(logs.ENV_LEVEL, None)
    else:
        os.environ[logs.ENV_LEVEL] = saved[3]


def test_configure_one_handler_one_format_and_levels(console):
    logs.configure("warning", stream=console)
    logs.configure("info", stream=console)  # idempotent: still one handler
    mine = [h for h in logging.getLogger("mlbench").handlers if h.get_name() == "mlbench-console"]
    assert len(mine) == 1
    assert os.environ[logs.ENV_LEVEL] == "INFO" and logs.current_level() == "INFO"
    logging.getLogger("mlbench.driver").info("hello %s", "driver")
    logging.getLogger("mlbench.driver").debug("not shown")
    logging.getLogger("mlbench.engine").info(json.dumps({"epoch": 0}))  # raw row: DEBUG only
    text = console.getvalue()
    assert "INFO    mlbench.driver [" in text and "hello driver" in text
    assert "not shown" not in text and '{"epoch": 0}' not in text
    logs.configure("DEBUG", stream=console)
    logging.getLogger("mlbench.engine").info(json.dumps({"epoch": 1}))
    assert '{"epoch": 1}' in console.getvalue()
    with pytest.raises(ValueError, match="--log-level"):
        logs.parse_level("LOUD")


CHILD = """
import logging
from mlbench import logs
with logs.worker_run({"run": {"id": "r1", "config": {}}, "log_dir": None}):
    logging.getLogger("mlbench.worker").warning("from the worker")
print(logging.getLevelName(logging.getLogger("mlbench").level))
"""


def test_a_started_worker_inherits_the_level_and_the_format(console):
    import subprocess
    import sys

    logs.configure("WARNING", stream=console)  # exports $MLBENCH_LOG_LEVEL (spawn inherits)
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(logs.__file__) + "/..")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "WARNING"
    assert "WARNING mlbench.worker [" in proc.stderr and "from the worker" in proc.stderr
    assert "run r1 started" not in proc.stderr  # INFO, below the inherited level


def task(tmp_path, run_id="abc123def456", epochs=3):
    run = {"id": run_id, "backbone": "resnet10t", "head": "linear", "loss": "bce", "seed": 0,
           "attempts": 1, "config": {"train": {"epochs": epochs, "device": "cpu"}}}
    return {"run": run, "checkpoint_dir": str(tmp_path / "ckpt"),
            "log_dir": str(tmp_path / "out" / "logs"), "log_level": "INFO"}


class Result:
    def __init__(self, run_id, status="finished", history=(), resumed_from=None):
        self.run_id, self.status, self.history = run_id, status, list(history)
        self.resumed_from, self.records = resumed_from, [("mean_auc", "", 0.71, 0.6, 0.8)]
        self.worker, self.device, self.train_seconds = "h:1", "cpu", 1.5
        self.error, self.failed_step = "ValueError: boom\ntraceback", 7


def test_run_file_worker_and_driver_lines(tmp_path, console):
    logs.configure("INFO", stream=console)
    out = tmp_path / "out"
    t = task(tmp_path)
    rid = t["run"]["id"]
    dlog = logs.DriverLog(out)
    try:
        dlog.claimed(t["run"], "this process")
        assert dlog.postfix() == f"- {rid[:6]} e0/3"
        with logs.worker_run(t) as on_epoch:
            on_epoch({"epoch": 0, "train_loss": 0.5, "val_mean_auc": float("nan")})
            assert dlog.postfix() == f"pid {os.getpid()} {rid[:6]} e1/3"
            on_epoch({"epoch": 1, "train_loss": 0.4, "val_mean_auc": 0.6})
        history = [{"epoch": e, "train_loss": 0.5 - 0.1 * e} for e in range(3)]
        dlog.stored(rid, Result(rid, history=history, resumed_from=0))
        assert dlog.live == {}
    finally:
        dlog.close()
    rows = logs.read_run_log(logs.run_log_path(out, rid))
    assert [r["event"] for r in rows] == ["claimed", "started", "epoch", "epoch", "epoch",
                                         "resumed", "finished"]
    assert all(r["run"] == rid and r["ts"] > 0 and r["time"].endswith("+00:00") for r in rows)
    started = rows[1]
    assert started["worker"].endswith(f":{os.getpid()}") and started["resuming"] is False
    assert rows[2]["val_mean_auc"] is None  # NaN is not JSON
    assert rows[4]["epoch"] == 2 and rows[4]["source"] == "driver"  # the one the worker missed
    assert rows[5]["from_epoch"] == 0 and rows[6]["mean_auc"] == 0.71
    assert f"run {rid} epoch 2/3 train_loss 0.4000 val_mean_auc 0.6000" in console.getvalue()
    summary = logs.summarize(rows)
    assert summary["epoch"] == 2 and summary["event"] == "finished"


def test_failed_released_and_a_worker_that_cannot_write(tmp_path, console):
    logs.configure("WARNING", stream=console)
    out = tmp_path / "out"
    t = task(tmp_path)
    rid = t["run"]["id"]
    dlog = logs.DriverLog(out)
    try:
        dlog.claimed(t["run"])
        dlog.released(rid, "worker h:9 gone")
        dlog.claimed(t["run"])
        t["log_dir"] = str(tmp_path / "file-not-folder" / "logs")
        (tmp_path / "file-not-folder").write_text("")
        with logs.worker_run(t) as on_epoch:  # cannot write: warns once, the run goes on
            on_epoch({"epoch": 0, "train_loss": 0.5})
        assert "cannot write" in console.getvalue()
        dlog.stored(rid, Result(rid, status="failed", history=[{"epoch": 0, "train_loss": 0.5}]))
    finally:
        dlog.close()
    rows = logs.read_run_log(logs.run_log_path(out, rid))
    assert [r["event"] for r in rows] == ["claimed", "released", "claimed", "epoch", "failed"]
    assert rows[1]["detail"] == "worker h:9 gone"
    assert rows[3]["source"] == "driver"
    assert rows[4]["error"] == "ValueError: boom" and rows[4]["failed_step"] == 7
    assert [r["event"] for r in logs.current_attempt(rows)] == ["claimed", "epoch", "failed"]


def test_read_run_log_skips_a_partial_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"event": "claimed", "run": "x"}\n{"event": "ep')
    assert logs.read_run_log(path) == [{"event": "claimed", "run": "x"}]
    assert logs.read_run_log(tmp_path / "missing.jsonl") == []


def test_a_resumed_run_has_one_line_per_epoch(tmp_path, console):
    logs.configure("WARNING", stream=console)
    out = tmp_path / "out"
    t = task(tmp_path, epochs=2)
    rid = t["run"]["id"]
    dlog = logs.DriverLog(out)
    try:
        dlog.claimed(t["run"])
        with logs.worker_run(t) as on_epoch:  # killed after its first epoch
            on_epoch({"epoch": 0, "train_loss": 0.5})
        dlog.released(rid, "worker h:9 gone")
        dlog.claimed(t["run"])
        with logs.worker_run(t) as on_epoch:  # resumes from epoch 0's checkpoint
            on_epoch({"epoch": 1, "train_loss": 0.4})
        history = [{"epoch": 0, "train_loss": 0.5}, {"epoch": 1, "train_loss": 0.4}]
        dlog.stored(rid, Result(rid, history=history, resumed_from=0))
    finally:
        dlog.close()
    rows = logs.read_run_log(logs.run_log_path(out, rid))
    assert [(r["event"], r.get("epoch")) for r in rows] == [
        ("claimed", None), ("started", None), ("epoch", 0), ("released", None),
        ("claimed", None), ("started", None), ("epoch", 1), ("resumed", None),
        ("finished", None)]
    assert not any(r.get("source") == "driver" for r in rows)


def test_console_follows_the_current_stderr(console, monkeypatch):
    # a handler bound to the stderr of configure() time writes into a closed capture later
    logs.configure("INFO")
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logging.getLogger("mlbench.driver").info("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("mlbench.driver").info("two")
    assert "two" in second.getvalue() and "Logging error" not in second.getvalue()
