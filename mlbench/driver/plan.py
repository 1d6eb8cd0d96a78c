"""The execution plan of one ``run_suite`` call: which executor, with which options.

Two steps, each fact decided once:

1. :func:`resolve` merges the suite's ``cluster`` section (and ``workers``) with the
   caller's options (the CLI's flags) into the chosen executor's options class
   (``mlbench.execution``) and checks them: a bad value, ``train.threads`` above the cores,
   GPUs asked for without CUDA fail here, before any data is prepared or run registered.
2. :func:`make_plan` builds the executor. For the local executor on CPU it first claims the
   cores its workers need from the machine's pool (``mlbench.driver.cores``), then decides
   the number of workers once, within both the machine's cores and the cores claimed (the
   rule: workers x train.threads <= cores); one worker runs in the driver's process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

from mlbench.driver.cores import CoreClaim, claim_cores, cpu_cores, run_threads
from mlbench.driver.executors import Executor
from mlbench.driver.executors.local import InlineExecutor, LocalExecutor
from mlbench.driver.executors.ray import RayExecutor
from mlbench.driver.executors.slurm import SlurmExecutor
from mlbench.execution import OPTIONS, Common, LocalOptions, SlurmOptions, options_for

log = logging.getLogger("mlbench.driver")

# name -> executor class; each names its options class (``options_class``). "inline" is the
# local plan's choice for one CPU worker, the others are ``--executor`` choices.
EXECUTORS: dict[str, type[Executor]] = {
    cls.name: cls for cls in (InlineExecutor, LocalExecutor, RayExecutor, SlurmExecutor)}


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


@dataclass(frozen=True)
class Options:
    """The execution options of one ``run_suite`` call, merged and checked.

    ``common``: the executor's name, ``keep_checkpoints``, ``checkpoint_dir``;
    ``executor``: the chosen executor's options (``LocalOptions``: the workers asked for
    and the GPUs they use; None when the caller gave an ``Executor``); ``threads``: a run's
    torch threads (``train.threads``); ``given``: the caller's executor, if any.
    """

    common: Common
    executor: object | None
    threads: int
    given: Executor | None = None


@dataclass
class Plan:
    """The executor to use, the cores it holds (release them when done), a note for the user."""

    executor: Executor
    claim: CoreClaim | None = None
    note: str | None = None


def resolve(suite, *, executor: str | Executor | None = None, **given) -> Options:
    """The execution options: the suite's ``cluster`` section and ``workers``, then the
    caller's (keys of ``mlbench.execution.OPTIONS``; None: not given).

    Raises:
        ValueError: one line naming the bad option. TypeError: an unknown option.
    """
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown execution option(s) {unknown}; valid: {sorted(OPTIONS)}")
    values = {**suite.config["cluster"], "workers": suite.config["workers"]}
    values.update({k: v for k, v in given.items() if v is not None})
    instance = executor if isinstance(executor, Executor) else None
    if executor is not None and instance is None:
        values["executor"] = executor
    common = options_for(Common, values)
    threads = run_threads({"train": suite.config["train"]})
    if instance is not None:
        return Options(common, None, threads, instance)
    chosen = options_for(EXECUTORS[common.executor].options_class, values)
    if isinstance(chosen, LocalOptions):
        chosen = _local_request(suite, chosen, threads, given.get("workers") is not None)
    elif isinstance(chosen, SlurmOptions) and chosen.folder is None:
        chosen = dataclasses.replace(chosen, folder=str(suite.output / "slurm"))
    return Options(common, chosen, threads)


def _local_request(suite, asked: LocalOptions, threads: int, explicit_workers: bool
                   ) -> LocalOptions:
    """The local executor's request: the GPUs (given, else every visible one; none on CPU)
    and the workers (given, else one per GPU, else the suite's ``workers``), checked against
    this machine."""
    device = suite.config["train"]["device"]
    cores = cpu_cores()
    if threads > cores:
        raise ValueError(f"train.threads={threads} exceeds the {cores} CPU core(s) here; "
                         f"set --set train.threads={cores} or less")
    visible = visible_gpus() if device != "cpu" else []
    gpus = asked.gpus
    if gpus and device == "cpu":
        raise ValueError("--gpus given but train.device is 'cpu'; use --set train.device=auto")
    if gpus and not visible:
        raise ValueError(f"--gpus {','.join(gpus)}: torch sees no CUDA device here")
    if device == "cuda" and not visible:
        raise ValueError("`train.device` is 'cuda' but torch sees no CUDA device here; "
                         "use --set train.device=auto (or cpu)")
    gpus = gpus or tuple(visible) or None
    workers = asked.workers if (explicit_workers or not gpus) else len(gpus)
    return LocalOptions(workers=workers, gpus=gpus)


def make_plan(suite, opts: Options, *, claim: bool = False) -> Plan:
    """The executor the options ask for. ``claim``: local CPU workers claim their cores
    first (a driver that will train; waits, saying so, while fewer than one run's threads
    are free)."""
    if opts.given is not None:
        return Plan(opts.given)
    chosen = opts.executor
    if not isinstance(chosen, LocalOptions):
        return Plan(EXECUTORS[chosen.name](**dataclasses.asdict(chosen)))
    threads, cores = opts.threads, cpu_cores()
    workers, note, held = chosen.workers, None, None
    most = max(1, cores // threads)
    if workers > most:
        note = (f"{workers} workers x {threads} thread(s) > {cores} cores: using {most} "
                "worker(s) (the rule: workers x train.threads <= cores)")
        workers = most
    if claim and not chosen.gpus:  # GPU workers compute on their GPU: no cores claimed
        held = claim_cores(workers * threads, least=threads, on_wait=log.warning)
        free = max(1, held.cores // threads)
        if free < workers:
            log.warning(f"{held.cores} free CPU core(s) on this machine (other mlbench "
                        f"drivers hold the rest): using {free} worker(s), not {workers} (the "
                        "rule: workers x train.threads <= the cores claimed)")
            workers = free
    if chosen.gpus is None and workers == 1:
        return Plan(EXECUTORS["inline"](), held, note)
    return Plan(EXECUTORS["local"](workers=workers, gpus=chosen.gpus), held, note)
