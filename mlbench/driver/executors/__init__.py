"""Executors: where the runs the driver hands out are computed.

One small interface (:class:`Executor`): ``start()``, ``free_slots()`` (how many more runs
it takes now), ``submit(task)``, ``wait(timeout)`` (the outcomes that arrived), ``close()``
and ``abort()``. A task is a plain dict (``mlbench.driver.worker.run_task``'s argument) and
every executor's worker calls the same run function on it (``Executor.fn``, by default
``run_task``); only the driver touches results.db. Each executor class names its options
class (``options_class``, from ``mlbench.execution``) and is built from its fields;
``mlbench.driver.plan.EXECUTORS`` is the table of them by name.
Imports nothing of mlbench outside the driver package but those options; Ray and submitit
are imported when their executor starts.

- ``inline``: in the driver's process, one run at a time (``--workers 1`` on CPU).
- ``local``: worker processes on this machine, one per GPU (``CUDA_VISIBLE_DEVICES`` set per
  worker before torch starts) or ``--workers N`` on CPU.
- ``ray``: one Ray task per run (``num_gpus`` / ``num_cpus``, retries on worker or node
  death), on a cluster (``--ray-address`` / ``RAY_ADDRESS``) or a local instance.
- ``slurm``: one Slurm job per run (a job array) through submitit; requeued on preemption
  or timeout, resuming from the run's checkpoint.
"""

from mlbench.driver.executors.base import Executor, Outcome, WorkerDeath

__all__ = ["Executor", "Outcome", "WorkerDeath"]
