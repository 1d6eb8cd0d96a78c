"""Session-wide test settings and fixtures.

The suite runs under pytest-xdist with one worker per core; letting each worker also use
several intra-op threads oversubscribes the machine and makes tiny-tensor tests ~10-50x
slower, so each test process uses one thread.

Drivers claim cores from one pool per machine (``mlbench.driver.cores``). Each test process
gets its own pool (unless the caller set ``MLBENCH_CORE_DIR``), so two xdist workers never
wait for each other's drivers, and a driver left over from another test run on this machine
cannot hold a test's cores; the ``reliability`` tests take a pool per test
(``private_core_pool``) and test the pool itself with pools of their own.

Tests are filed by the package they exercise (tests/<package>/); the acceptance suites are
markers: ``pytest -m reliability``, ``-m scale``, ``-m observability`` (pyproject.toml).
Shared helpers: tests/helpers.py.
"""

import fcntl
import os
import tempfile

import pytest
import torch

from tests.helpers import kill_spawned, tiny_suite

torch.set_num_threads(1)
# xdist workers inherit the controller's environment: a pool set here (not by the caller)
# is replaced in each worker by one of its own.
_OURS = "_MLBENCH_TEST_CORE_DIR"
if os.environ.get("MLBENCH_CORE_DIR") in (None, os.environ.get(_OURS)):
    os.environ["MLBENCH_CORE_DIR"] = os.environ[_OURS] = tempfile.mkdtemp(
        prefix="mlbench-test-cores-")


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory):
    """One CXR14-sim folder with its prepared cache (16 px): the tiny suite's data
    (``tests.helpers.tiny_suite``) for every test of the session that trains on it.

    Under pytest-xdist the workers share one folder beside their temporary folders: the
    first to get here generates it, the others wait on a file lock and reuse it. Tests copy
    it before they damage it; the runs only read it.
    """
    from mlbench.driver import prepare_data
    from mlbench.suite import load_suite

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, shared by its workers
    root = base / "sim"
    with open(base / "sim.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepare_data(load_suite(tiny_suite(root, base / "unused"), env={}).dataset,
                     progress=False)
    return root


@pytest.fixture(autouse=True)
def no_process_left():
    """A test that fails half-way leaves no driver or worker behind (the process groups of
    what ``tests.helpers.spawn`` started)."""
    yield
    kill_spawned()


@pytest.fixture
def private_core_pool(tmp_path, monkeypatch):
    """This test claims CPU cores from its own pool (``mlbench.driver.cores``), not from the
    test process's, so that nothing another test left behind makes it wait."""
    monkeypatch.setenv("MLBENCH_CORE_DIR", str(tmp_path / "cores"))


@pytest.fixture
def filled(tmp_path):
    """(output dir, suite) with every run finished on fake predictions: resnet10t x {linear,
    bilinear} x {bce, msml, bce+0.1*msml} x seeds {0, 1}, better losses in that order."""
    from mlbench.suite import load_suite
    from tests.helpers import EIGHT_RUNS, fill_suite

    suite = load_suite(tiny_suite(None, tmp_path / "out", EIGHT_RUNS, **{
        "grid.loss": ["bce", "msml", "bce+0.1*msml"]}), train_keys=False)
    strength = {"bce": 1.0, "msml": 1.5, "bce+0.1*msml": 2.0}
    return fill_suite(suite, strength, 32), suite
