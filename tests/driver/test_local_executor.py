"""The local executor's plan: one worker per GPU with its own CUDA_VISIBLE_DEVICES, and
workers x train.threads within the machine's cores."""

from __future__ import annotations

import os

import pytest

from mlbench.driver import plan
from mlbench.driver.executors.local import InlineExecutor, LocalExecutor
from mlbench.suite import load_suite
from tests.helpers import tiny_suite

pytestmark = pytest.mark.scale


def _suite(tmp_path, device="auto", threads=1, workers=1):
    cfg = tiny_suite(tmp_path / "sim", tmp_path / "out", workers=workers,
                     train={"device": device, "threads": threads})
    return load_suite(cfg, env={})


def _plan(suite, workers=None, gpus=None):
    made = plan.make_plan(suite, plan.resolve(suite, workers=workers, gpus=gpus))
    return made.executor, made.note


def test_one_worker_per_visible_gpu_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "visible_gpus", lambda: ["0", "1", "2", "3"])
    monkeypatch.setattr(plan, "cpu_cores", lambda: 16)
    ex, note = _plan(_suite(tmp_path))
    assert isinstance(ex, LocalExecutor) and ex.n == 4 and ex.gpus == ["0", "1", "2", "3"]
    ex, _ = _plan(_suite(tmp_path), gpus="2,3")
    assert ex.n == 2 and ex.gpus == ["2", "3"]
    ex, _ = _plan(_suite(tmp_path, device="cpu"))  # a CPU suite ignores the GPUs
    assert isinstance(ex, InlineExecutor)


def test_workers_times_threads_stay_within_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "visible_gpus", lambda: [])
    monkeypatch.setattr(plan, "cpu_cores", lambda: 4)
    ex, note = _plan(_suite(tmp_path, threads=2), workers=3)
    assert ex.n == 2 and "3 workers x 2 thread(s) > 4 cores: using 2" in note
    with pytest.raises(ValueError, match=r"train.threads=8 exceeds the 4 CPU core"):
        _plan(_suite(tmp_path, threads=8))
    with pytest.raises(ValueError, match=r"--gpus 0: torch sees no CUDA device"):
        _plan(_suite(tmp_path), gpus="0")
    with pytest.raises(ValueError, match=r"--keep-checkpoints must be one of"):
        plan.resolve(_suite(tmp_path), keep_checkpoints="some")


def _report_gpu(task):
    from mlbench.driver import RunResult

    return RunResult(run_id=task["run"]["id"], status="failed", error="not trained",
                     device=os.environ.get("CUDA_VISIBLE_DEVICES", ""))


def test_each_worker_process_sees_only_its_gpu(tmp_path):
    ex = LocalExecutor(workers=2, gpus=["3", "5"], fn=_report_gpu, start_method="fork")
    ex.start()
    try:
        for i in range(2):
            assert ex.free_slots() == 2 - i
            ex.submit({"run": {"id": f"r{i}", "config": {}}})
        got = []
        while len(got) < 2:
            got += ex.wait(5.0)
    finally:
        ex.close()
    assert sorted(o.result.device for o in got) == ["3", "5"]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "5"  # the driver's own is untouched
    assert ex.deaths() == []
