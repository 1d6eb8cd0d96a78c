"""Executors: where the runs the driver hands out are computed.

One small interface (:class:`Executor`): ``start()``, ``free_slots()`` (how many more runs
it takes now), ``submit(task)``, ``wait(timeout)`` (the outcomes that arrived), ``close()``
and ``abort()``. A task is a plain dict (``mlbench.driver.worker.run_task``'s argument) and
every executor's worker calls the same run function on it; only the driver touches
results.db. Imports nothing of mlbench outside the driver package; a worker imports the
one-run function (``mlbench.driver.worker``) when it starts.

- ``inline``: in the driver's process, one run at a time (``--workers 1`` on CPU).
- ``local``: worker processes on this machine, one per GPU (``CUDA_VISIBLE_DEVICES`` set per
  worker before torch starts) or ``--workers N`` on CPU.
- ``ray``: one Ray task per run (``num_gpus`` / ``num_cpus``, retries on worker or node
  death), on a cluster (``--ray-address`` / ``RAY_ADDRESS``) or a local instance.
- ``slurm``: one Slurm job per run (a job array) through submitit; requeued on preemption
  or timeout, resuming from the run's checkpoint.
"""

from mlbench.driver.executors.base import Executor, Outcome, WorkerDeath

__all__ = ["Executor", "Outcome", "WorkerDeath", "make_executor"]


def make_executor(name: str, **options) -> Executor:
    """The executor called ``name`` ("inline", "local", "ray", "slurm") with its options."""
    if name == "inline":
        from mlbench.driver.executors.local import InlineExecutor

        return InlineExecutor(**options)
    if name == "local":
        from mlbench.driver.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        from mlbench.driver.executors.ray import RayExecutor

        return RayExecutor(**options)
    if name == "slurm":
        from mlbench.driver.executors.slurm import SlurmExecutor

        return SlurmExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; valid executors: local, ray, slurm")
