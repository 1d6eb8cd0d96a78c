"""Slurm executor through submitit: one job per run, submitted as a job array
(``pip install 'mlbench[slurm]'``).

Every job runs the same run function (``mlbench.driver.worker.run_task``) in the driver's
Python environment (shared filesystem), writes its checkpoints to the shared checkpoint
folder and returns its ``RunResult`` through submitit's folder; the driver polls the jobs and stores
each result as it comes back. A job hit by preemption or its time limit is requeued by
submitit (a job body with ``checkpoint``) and resumes from its last epoch. Options:
``mlbench.execution.SlurmOptions`` (suite ``cluster:`` section or CLI); ``slurm_cluster:
local`` / ``debug`` (``--slurm-cluster``) run the jobs with submitit's local executors
(tests, a try-out without Slurm). submitit is imported when the executor starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlbench.driver.executors.base import Executor, Outcome, per_run
from mlbench.driver.worker import RunResult
from mlbench.execution import SlurmOptions


class _Job:
    """The job body: requeued with the same task on preemption / timeout (submitit calls
    ``checkpoint``, as on its ``helpers.Checkpointable``), and the run resumes from its
    ``last.pt``."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, task: dict):
        return self.fn(task)

    def checkpoint(self, task: dict):
        """The same job with the same task, for submitit to requeue."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, task)


class SlurmExecutor(Executor):
    """Runs as Slurm jobs (submitit).

    Args:
        fn: the run function (default ``mlbench.driver.worker.run_task``).
        poll_s: seconds between polls of the jobs' state.
        max_requeues: requeues of a job on preemption or time-out.
        options: ``SlurmOptions`` fields: ``folder`` (submitit's folder for job scripts,
            logs and results; required here, the plan makes it OUT/slurm), ``partition``,
            ``time_min``, ``gpus_per_run`` (``gpus_per_node``), ``cpus_per_run``,
            ``mem_gb``, ``array_parallelism``, ``cluster`` (None: what submitit finds;
            "local" or "debug": submitit's local executors).
    """

    name = SlurmOptions.name
    options_class = SlurmOptions

    def __init__(self, fn: Callable | None = None, *, poll_s: float = 5.0,
                 max_requeues: int = 3, **options):
        super().__init__(fn, **options)
        if self.options.folder is None:
            raise ValueError("the slurm executor needs a folder for submitit (--slurm-folder)")
        self.folder = Path(self.options.folder)
        self.partition, self.cluster = self.options.partition, self.options.cluster
        self.poll_s, self.max_requeues = poll_s, max_requeues
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
        o = self.options
        asks = per_run(task["run"]["config"]["train"], o.cpus_per_run, o.gpus_per_run)
        params = {"timeout_min": o.time_min, "cpus_per_task": asks["num_cpus"],
                  "name": "mlbench", "gpus_per_node": int(asks["num_gpus"]),
                  "mem_gb": o.mem_gb, "slurm_partition": o.partition,
                  "slurm_array_parallelism": o.array_parallelism}
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
