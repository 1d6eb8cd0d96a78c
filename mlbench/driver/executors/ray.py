"""Ray executor: one Ray task per run (``pip install 'mlbench[ray]'``).

The driver connects to ``address`` (``--ray-address``, else ``RAY_ADDRESS``) or, with
neither, starts a local Ray instance on this machine. Each run is a task with ``num_gpus``
(Ray sets the task's ``CUDA_VISIBLE_DEVICES``) and ``num_cpus`` (default: the run's torch
threads plus its DataLoader workers); Ray retries a task whose worker process or node died
(``max_retries``), and the run resumes from its last checkpoint. Results come back through
``ray.wait`` as tasks finish; the driver stores them. Workers need mlbench importable (the
same environment on every node) and, to resume on another node, the checkpoint folder on
shared storage.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from mlbench.driver.executors.base import Executor, Outcome, per_run
from mlbench.driver.worker import RunResult
from mlbench.execution import RayOptions


def _call(fn: Callable, task: dict):
    """The Ray task body: the run function on the task."""
    return fn(task)


class RayExecutor(Executor):
    """Runs as Ray tasks.

    Args:
        fn: the run function (default ``mlbench.driver.worker.run_task``).
        max_in_flight: most tasks submitted at once (None: every pending run; Ray queues).
        init_kwargs: extra ``ray.init`` arguments (a local instance: ``num_cpus``...).
        options: ``RayOptions`` fields: ``address`` ("auto", "ray://host:10001",
            "host:6379"; None reads ``RAY_ADDRESS`` and falls back to a local instance),
            ``cpus_per_run`` / ``gpus_per_run`` (``num_cpus`` / ``num_gpus`` of each task;
            ``num_gpus`` defaults to 0 on a cluster without GPUs), ``max_retries``.
    """

    name = RayOptions.name
    options_class = RayOptions

    def __init__(self, fn: Callable | None = None, *, max_in_flight: int | None = None,
                 init_kwargs: dict | None = None, **options):
        super().__init__(fn, **options)
        self.address = self.options.address or os.environ.get("RAY_ADDRESS") or None
        self.max_in_flight = max_in_flight
        self.init_kwargs = dict(init_kwargs or {})
        self._refs: dict = {}
        self._owned = False
        self._remote = None
        self._cluster_gpus = 0.0

    def start(self) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise RuntimeError("--executor ray needs Ray: pip install 'mlbench[ray]'") from None
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as exc:
                raise RuntimeError(f"cannot reach the Ray cluster at {self.address} "
                                   f"(--ray-address / RAY_ADDRESS): {exc}") from None
            self._owned = True
        self._cluster_gpus = float(ray.cluster_resources().get("GPU", 0.0))
        self._remote = ray.remote(_call)

    def free_slots(self) -> int:
        if self.max_in_flight is None:
            return 1 << 20
        return max(0, self.max_in_flight - len(self._refs))

    def resources(self, task: dict) -> dict:
        return per_run(task["run"]["config"]["train"], self.options.cpus_per_run,
                       self.options.gpus_per_run, cuda=self._cluster_gpus > 0)

    def submit(self, task: dict) -> None:
        run_id = task["run"]["id"]
        ref = self._remote.options(
            **self.resources(task), max_retries=self.options.max_retries, retry_exceptions=False,
            name=f"mlbench-{run_id}").remote(self.fn, task)
        self._refs[ref] = run_id

    def wait(self, timeout: float) -> list[Outcome]:
        import ray
        from ray.exceptions import RayError

        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # and whatever else is done by now
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        out = []
        for ref in ready:
            run_id = self._refs.pop(ref)
            try:
                out.append(Outcome(run_id, "done", ray.get(ref)))
            except RayError as exc:  # retries used up (worker/node died each time), ...
                first = str(exc).strip().splitlines()[:1] or [""]
                error = (f"Ray task failed after {self.options.max_retries} retries: "
                         f"{type(exc).__name__}: {first[0]}\n{exc}")
                out.append(Outcome(run_id, "done", RunResult(run_id=run_id, status="failed",
                                                             error=error)))
        return out

    def abort(self) -> None:
        import ray

        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or gone: nothing to stop
                pass
        self._refs.clear()
        self.close()

    def close(self) -> None:
        import ray

        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        return f"Ray tasks on {where}"
