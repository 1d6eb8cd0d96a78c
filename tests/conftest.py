"""Session-wide test settings.

The suite runs under pytest-xdist with one worker per core; letting each worker also use
several intra-op threads oversubscribes the machine and makes tiny-tensor tests ~10-50x
slower, so each test process uses one thread.

Drivers claim cores from one pool per machine (``mlbench.driver.cores``). Each test process
gets its own pool (unless the caller set ``MLBENCH_CORE_DIR``), so two xdist workers never
wait for each other's drivers, and a driver left over from another test run on this machine
cannot hold a test's cores; ``tests/reliability`` tests the pool itself with pools of their own.
"""

import os
import tempfile

import torch

torch.set_num_threads(1)
# xdist workers inherit the controller's environment: a pool set here (not by the caller)
# is replaced in each worker by one of its own.
_OURS = "_MLBENCH_TEST_CORE_DIR"
if os.environ.get("MLBENCH_CORE_DIR") in (None, os.environ.get(_OURS)):
    os.environ["MLBENCH_CORE_DIR"] = os.environ[_OURS] = tempfile.mkdtemp(
        prefix="mlbench-test-cores-")
