"""The tests' fault hook: $MLBENCH_FAULT, read by the driver, acted on by the worker
(mlbench.driver.worker; docs/HARNESS.md "Fault injection (tests)")."""

from __future__ import annotations

import os

import pytest

from mlbench.driver import worker


def test_fault_specs_parse_or_say_what_is_wrong():
    got = worker.parse_faults("after_epoch:1:hold:/tmp/a:b; start:raise:boom: here")
    assert got == [worker.Fault("after_epoch", 1, "hold", "/tmp/a:b"),
                   worker.Fault("start", None, "raise", "boom: here")]
    assert worker.parse_faults(None) == [] and worker.parse_faults("") == []
    for bad, why in [("stop:kill", "unknown point 'stop'"),
                     ("after_epoch:kill", "after_epoch needs an epoch"),
                     ("start:explode", "unknown action 'explode'"),
                     ("start:hold", "hold needs a file"),
                     ("after_epoch:0:sleep:soon", "sleep needs seconds, e.g. after_epoch:0:sleep:2")]:
        with pytest.raises(ValueError, match=why):
            worker.parse_faults(bad)


def test_faults_act_at_their_point_only(tmp_path, monkeypatch):
    run = {"id": "abc", "loss": "bce", "seed": 0}
    task = {"run": run, "fault": "start:raise:boom in {loss} of {id}"}
    with pytest.raises(RuntimeError, match="^boom in bce of abc$"):
        worker.inject(task, "start")
    worker.inject(task, "after_epoch", 0)  # another point: nothing
    worker.inject({"run": run, "fault": None}, "start")
    held = tmp_path / "held"
    monkeypatch.setattr(worker, "HOLD_S", 0.0)
    task = {"run": run, "fault": f"after_epoch:1:hold:{held}"}
    worker.inject(task, "after_epoch", 0)
    assert not held.exists()
    worker.inject(task, "after_epoch", 1)
    assert held.read_text() == f"{os.getpid()} abc"
    held.write_text("")
    worker.inject(task, "after_epoch", 1)  # the first process only
    assert held.read_text() == ""
    with pytest.raises(KeyboardInterrupt):
        worker.inject({"run": run, "fault": "after_epoch:1:interrupt"}, "after_epoch", 1)


def test_the_driver_checks_the_spec_and_puts_it_in_every_task(monkeypatch):
    monkeypatch.setenv(worker.FAULT_ENV, "start:kill")
    assert worker.fault_spec() == "start:kill"
    monkeypatch.setenv(worker.FAULT_ENV, "start:nope")
    with pytest.raises(ValueError, match="unknown action 'nope'"):
        worker.fault_spec()
    monkeypatch.delenv(worker.FAULT_ENV)
    assert worker.fault_spec() is None
