"""The driver: runs a suite's runs and is the only writer of ``OUT/results.db``.

``loop`` (``run_suite`` and :class:`Driver`: claim -> submit -> store, leases, resume),
``plan`` (the execution options and the executor they ask for), ``prepare`` (the data made
ready once, the datasets a process reuses), ``worker`` (one run as a function: config in,
``RunResult`` out), ``tuned`` (a tuned suite's two stages with selection on validation),
``cores`` (the CPU cores the drivers of one machine share) and ``executors/`` (where runs
are computed: this process, local workers, Ray, Slurm). Imports every stage below it
(``suite``, ``data``, ``models``, ``train``, ``stats``, ``db``, ``logs``), nothing above
it: the leaderboard never imports the driver, the commands only when a run starts.
"""

from mlbench.driver.executors.base import WorkerDied
from mlbench.driver.loop import Driver, run_suite
from mlbench.driver.prepare import Datasets, dataset_meta, prepare_data
from mlbench.driver.tuned import run_tuned
from mlbench.driver.worker import RunResult, execute, run_task

__all__ = ["Datasets", "Driver", "RunResult", "WorkerDied", "dataset_meta", "execute",
           "prepare_data", "run_suite", "run_task", "run_tuned"]
