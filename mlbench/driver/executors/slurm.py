"""Slurm executor through submitit: one job per run, submitted as a job array
(``pip install 'mlbench[slurm]'``).

Every job runs the same run function (``mlbench.driver.worker.run_task``) in the driver's
Python environment (shared filesystem), writes its checkpoints to the shared checkpoint
folder and returns its ``RunResult`` through submitit's folder; the driver polls the jobs and stores
each result as it comes back. A job hit by preemption or its time limit is requeued by
submitit (``Checkpointable``) and resumes from its last epoch. Options: ``partition``,
``time_min``, ``gpus_per_run``, ``cpus_per_run``, ``mem_gb``, ``array_parallelism``
(suite ``cluster:`` section or CLI). ``cluster="local"`` / ``"debug"`` run the jobs with
submitit's local executors (tests, a try-out without Slurm).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlbench.driver.executors.base import Executor, Outcome

try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ModuleNotFoundError:  # the executor says how to install it when it is used
    _Checkpointable = object


class _Job(_Checkpointable):
    """The job body: requeued with the same task on preemption / timeout (submitit calls
    ``checkpoint``), and the run resumes from its ``last.pt``."""

    def __init__(self, fn: Callable | None = None):
        self.fn = fn

    def __call__(self, task: dict):
        if self.fn is None:
            from mlbench.driver.worker import run_task

            return run_task(task)
        return self.fn(task)


class SlurmExecutor(Executor):
    """Runs as Slurm jobs (submitit).

    Args:
        folder: submitit's folder for job scripts, logs and results (default OUT/slurm).
        partition: Slurm partition (None: the cluster's default).
        time_min: time limit per job in minutes.
        gpus_per_run: GPUs per job (``gpus_per_node``).
        cpus_per_run: CPUs per job (None: train.threads + train.num_workers).
        mem_gb: memory per job (None: the partition's default).
        array_parallelism: most jobs of the array running at once.
        cluster: None (Slurm), "local" or "debug" (submitit's local executors).
        fn: the run function (default ``mlbench.driver.worker.run_task``).
        poll_s: seconds between polls of the jobs' state.
    """

    name = "slurm"

    def __init__(self, folder: str | Path, partition: str | None = None, time_min: int = 240,
                 gpus_per_run: int = 1, cpus_per_run: int | None = None,
                 mem_gb: int | None = None, array_parallelism: int = 16,
                 cluster: str | None = None, fn: Callable | None = None, poll_s: float = 5.0,
                 max_requeues: int = 3):
        self.folder = Path(folder)
        self.partition, self.time_min = partition, time_min
        self.gpus_per_run, self.cpus_per_run, self.mem_gb = gpus_per_run, cpus_per_run, mem_gb
        self.array_parallelism, self.cluster = array_parallelism, cluster
        self.fn, self.poll_s, self.max_requeues = fn, poll_s, max_requeues
        self._queued: list[dict] = []
        self._jobs: dict = {}
        self._ex = None

    def start(self) -> None:
        try:
            import submitit
        except ModuleNotFoundError:
            raise RuntimeError("--executor slurm needs submitit: pip install 'mlbench[slurm]'"
                               ) from None
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=self.cluster,
                                         slurm_max_num_timeout=self.max_requeues)

    def _configure(self, task: dict) -> None:
        train = task["run"]["config"]["train"]
        cpus = self.cpus_per_run
        if cpus is None:
            cpus = int(train.get("threads") or 1) + int(train.get("num_workers") or 0)
        params = {"timeout_min": self.time_min, "cpus_per_task": cpus, "name": "mlbench",
                  "gpus_per_node": self.gpus_per_run, "mem_gb": self.mem_gb,
                  "slurm_partition": self.partition,
                  "slurm_array_parallelism": self.array_parallelism}
        if self._ex.cluster != "slurm":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        self._ex.update_parameters(**params)

    def free_slots(self) -> int:
        return 1 << 20

    def submit(self, task: dict) -> None:
        self._queued.append(task)

    def _flush(self) -> None:
        """Submit the queued tasks as one job array."""
        if not self._queued:
            return
        self._configure(self._queued[0])
        job_fn = _Job(self.fn)
        with self._ex.batch():
            jobs = [(self._ex.submit(job_fn, t), t["run"]["id"]) for t in self._queued]
        for job, run_id in jobs:
            self._jobs[job] = run_id
        self._queued = []

    def wait(self, timeout: float) -> list[Outcome]:
        self._flush()
        deadline = time.monotonic() + timeout
        while True:
            done = [job for job in self._jobs if job.done()]
            if done or not self._jobs or time.monotonic() >= deadline:
                break
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        out = []
        for job in done:
            run_id = self._jobs.pop(job)
            try:
                out.append(Outcome(run_id, "done", job.result()))
            except Exception as exc:  # job failed, timed out too often, was cancelled
                from mlbench.driver.worker import RunResult

                first = (str(exc).strip().splitlines() or [""])[0]
                error = f"Slurm job {job.job_id} failed: {type(exc).__name__}: {first}\n{exc}"
                out.append(Outcome(run_id, "done",
                                   RunResult(run_id=run_id, status="failed", error=error)))
        return out

    def abort(self) -> None:
        for job in list(self._jobs):
            try:
                job.cancel(check=False)
            except Exception:  # already ended
                pass
        self._jobs.clear()

    def describe(self) -> str:
        where = "submitit's local executor" if self.cluster in ("local", "debug") else "Slurm"
        return f"jobs on {where} (partition {self.partition or 'default'})"
