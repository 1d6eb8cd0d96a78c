"""Execution options and the executor they ask for (``run_suite``'s planning): ``resolve``
merges the suite's ``cluster`` section with the CLI's options, ``build_executor`` makes the
executor; ``--executor local`` is planned by ``_local_plan`` (workers x train.threads within
the cores, one process per GPU)."""

from __future__ import annotations

import os

from mlbench.driver.cores import cpu_cores, run_threads
from mlbench.driver.executors import Executor, make_executor

EXECUTORS = ("local", "ray", "slurm")
KEEP_CHECKPOINTS = ("none", "best", "all")


def visible_gpus() -> list[str]:
    """GPU ids as ``CUDA_VISIBLE_DEVICES`` takes them: this process's visible list, or
    0..n-1 (empty without CUDA)."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        ids = [g.strip() for g in env.split(",") if g.strip()]
        return ids[:n]
    return [str(i) for i in range(n)]


def resolve(suite, *, executor: str | None = None, workers: int | None = None,
            gpus: str | list | None = None, **cluster) -> dict:
    """The execution options: the suite's ``cluster`` section, then the CLI's (non-None).

    Returns:
        ``cluster`` keys filled in, plus ``executor``, ``workers``, ``gpus`` (list or None)
        and ``threads``.

    Raises:
        ValueError: one line naming the bad option.
    """
    opts = dict(suite.config.get("cluster") or {})
    opts.update({k: v for k, v in cluster.items() if v is not None})
    if executor is not None:
        opts["executor"] = executor
    opts.setdefault("executor", "local")
    if opts["executor"] not in EXECUTORS:
        raise ValueError(f"--executor must be one of {list(EXECUTORS)}, got {opts['executor']!r}")
    keep = opts.setdefault("keep_checkpoints", "best")
    if keep not in KEEP_CHECKPOINTS:
        raise ValueError(f"--keep-checkpoints must be one of {list(KEEP_CHECKPOINTS)}, got {keep!r}")
    if gpus is None:
        gpus = opts.get("gpus")
    if isinstance(gpus, int) and not isinstance(gpus, bool):
        gpus = [str(gpus)]
    if isinstance(gpus, str):
        gpus = [g.strip() for g in gpus.split(",") if g.strip()]
        if not gpus:
            raise ValueError("--gpus expects GPU ids such as 0,1,2")
    elif isinstance(gpus, (list, tuple)):
        gpus = [str(g) for g in gpus]
    opts["gpus"] = gpus
    opts["workers"] = workers if workers is not None else suite.config.get("workers", 1)
    if opts["workers"] < 1:
        raise ValueError(f"--workers must be >= 1, got {opts['workers']}")
    opts["threads"] = run_threads({"train": suite.config["train"]})
    return opts


def _local_plan(suite, opts: dict, explicit_workers: bool) -> tuple[str, dict, str | None]:
    """(executor name, its options, a note for the user) for ``--executor local``.

    CPU: ``workers`` processes (1: in this process) with ``train.threads`` torch threads each,
    at most ``cores // threads`` of them. CUDA: one process per GPU (``--gpus``, default
    every visible GPU), or ``--workers`` processes over them round robin.
    """
    device = suite.config["train"]["device"]
    threads, cores = opts["threads"], cpu_cores()
    if threads > cores:
        raise ValueError(f"train.threads={threads} exceeds the {cores} CPU core(s) here; "
                         f"set --set train.threads={cores} or less")
    visible = visible_gpus() if device != "cpu" else []
    gpus = opts["gpus"]
    if gpus and device == "cpu":
        raise ValueError("--gpus given but train.device is 'cpu'; use --set train.device=auto")
    if gpus and not visible:
        raise ValueError(f"--gpus {','.join(gpus)}: torch sees no CUDA device here")
    if device == "cuda" and not visible:
        raise ValueError("`train.device` is 'cuda' but torch sees no CUDA device here; "
                         "use --set train.device=auto (or cpu)")
    note = None
    gpus = gpus or visible or None
    workers = opts["workers"] if (explicit_workers or not gpus) else len(gpus)
    most = max(1, cores // threads)
    if workers > most:
        note = (f"{workers} workers x {threads} thread(s) > {cores} cores: using {most} "
                "worker(s) (the rule: workers x train.threads <= cores)")
        workers = most
    if gpus is None and workers == 1:
        return "inline", {}, note
    return "local", {"workers": workers, "gpus": gpus}, note


def build_executor(suite, opts: dict, explicit_workers: bool = False) -> tuple[Executor, str | None]:
    """The executor the options ask for, and a note for the user (or None)."""
    name = opts["executor"]
    if name == "local":
        kind, kwargs, note = _local_plan(suite, opts, explicit_workers)
        return make_executor(kind, **kwargs), note
    if name == "ray":
        return make_executor("ray", address=opts.get("ray_address"),
                             cpus_per_run=opts.get("cpus_per_run"),
                             gpus_per_run=opts.get("gpus_per_run"),
                             max_retries=opts.get("max_retries", 3)), None
    folder = opts.get("slurm_folder") or str(suite.output / "slurm")
    gpus_per_run = opts.get("gpus_per_run")
    if gpus_per_run is None:
        gpus_per_run = 0 if suite.config["train"]["device"] == "cpu" else 1
    return make_executor("slurm", folder=folder, partition=opts.get("partition"),
                         time_min=opts.get("time_min", 240), gpus_per_run=int(gpus_per_run),
                         cpus_per_run=opts.get("cpus_per_run"), mem_gb=opts.get("mem_gb"),
                         array_parallelism=opts.get("array_parallelism", 16),
                         cluster=opts.get("slurm_cluster")), None
