"""Execution options: where and how a suite's runs are computed (no torch, no mlbench import).

One frozen dataclass per executor holds each of its options once, with its default and its
help text (as Hydra's launcher configs, e.g. ``SlurmQueueConf``): :class:`LocalOptions`,
:class:`RayOptions`, :class:`SlurmOptions`, and :class:`Common` for what every executor shares.
Everything else is derived from them:

- the suite's keys (``mlbench.suite.schema``): ``cluster:`` holds every option but
  ``workers``, which is a top-level key;
- the ``run`` command's flags (``mlbench.commands.run``): ``--`` + the key with dashes;
- the executors (``mlbench.driver``): each executor class names its options class and is
  built from an instance of it.

An option's key is its field name unless its metadata names another (``ray_address``,
``slurm_folder``, ``slurm_cluster``: one flat ``cluster:`` section stays readable). Both the
suite loader and the CLI's ``--help`` read this module, hence its place at the top of the
package and its imports (the standard library only).
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar


def _opt(default: Any, help: str, *, key: str | None = None, choices: tuple | None = None,
         minimum: int | float | None = None, metavar: str | None = None,
         accepts: tuple | None = None, top: bool = False) -> Any:
    """A field with what the schema and the CLI need to know about it.

    ``accepts``: the types a suite may write when wider than the annotation (``gpus: 0`` or
    ``"0,1"`` or ``[0, 1]``); ``top``: a top-level suite key, not one of ``cluster:``.
    """
    return field(default=default, metadata={
        "help": help, "key": key, "choices": choices, "minimum": minimum, "metavar": metavar,
        "accepts": accepts, "top": top})


def _gpus_per_run() -> Any:
    return _opt(None, "GPUs per run (default 1 when the run uses CUDA, else 0)", minimum=0,
                metavar="N")


def _cpus_per_run() -> Any:
    return _opt(None, "CPUs per run (default train.threads + train.num_workers)", minimum=1,
                metavar="N")


def _gpu_ids(value: Any) -> tuple[str, ...] | None:
    """``--gpus`` / ``cluster.gpus`` as ``CUDA_VISIBLE_DEVICES`` ids: "0,1", 3, [0, 1]."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, str):
        ids = tuple(g.strip() for g in value.split(",") if g.strip())
        if not ids:
            raise ValueError("--gpus expects GPU ids such as 0,1,2")
        return ids
    return tuple(str(g) for g in value)


@dataclass(frozen=True)
class LocalOptions:
    """``local``: this process (one CPU worker), or worker processes on this machine, one per
    GPU with its own ``CUDA_VISIBLE_DEVICES``."""

    name: ClassVar[str] = "local"
    workers: int = _opt(1, "parallel worker processes on this machine (the suite's `workers`; "
                        "with GPUs: one per GPU unless given)", minimum=1, metavar="N", top=True)
    gpus: tuple[str, ...] | None = _opt(
        None, "GPUs to use, one worker each, e.g. 0,1,2,3 (default: every visible GPU; none: "
        "CPU)", metavar="IDS", accepts=(list, str, int, type(None)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus", _gpu_ids(self.gpus))


@dataclass(frozen=True)
class RayOptions:
    """``ray``: one Ray task per run, on a cluster or a local Ray instance."""

    name: ClassVar[str] = "ray"
    address: str | None = _opt(None, "cluster address (default $RAY_ADDRESS, else a local "
                               "instance)", key="ray_address", metavar="ADDR")
    gpus_per_run: float | None = _gpus_per_run()
    cpus_per_run: int | None = _cpus_per_run()
    max_retries: int = _opt(3, "retries of a run whose worker or node died", minimum=0,
                            metavar="N")


@dataclass(frozen=True)
class SlurmOptions:
    """``slurm``: one Slurm job per run, a job array submitted through submitit."""

    name: ClassVar[str] = "slurm"
    partition: str | None = _opt(None, "partition (default: the cluster's)")
    time_min: int = _opt(240, "time limit per run in minutes (a run that hits it is requeued "
                         "and resumes)", minimum=1, metavar="MIN")
    gpus_per_run: float | None = _gpus_per_run()
    cpus_per_run: int | None = _cpus_per_run()
    mem_gb: int | None = _opt(None, "memory per run (default: the partition's)", minimum=1,
                              metavar="GB")
    array_parallelism: int = _opt(16, "most runs of the job array at once", minimum=1,
                                  metavar="N")
    folder: str | None = _opt(None, "submitit's folder: job scripts, logs, results (default "
                              "OUT/slurm)", key="slurm_folder", metavar="DIR")
    cluster: str | None = _opt(None, "submitit's executor: slurm, or local/debug to run the "
                               "jobs on this machine without Slurm (default: slurm where "
                               "submitit finds it)", key="slurm_cluster",
                               choices=("slurm", "local", "debug"))


# the executors a user chooses (``--executor``) by name; the driver's table of executor
# classes (``mlbench.driver.executors.EXECUTORS``) adds "inline", which the local plan picks
EXECUTOR_OPTIONS: dict[str, type] = {c.name: c for c in (LocalOptions, RayOptions, SlurmOptions)}


@dataclass(frozen=True)
class Common:
    """What every executor shares: which one, and the checkpoints of the runs."""

    executor: str = _opt("local", "where runs are computed: local processes, Ray tasks, or "
                         "Slurm jobs via submitit", choices=tuple(EXECUTOR_OPTIONS))
    keep_checkpoints: str = _opt("best", "what stays of a stored run's checkpoints: best.pt "
                                 "(best), best.pt and last.pt (all), or nothing (none)",
                                 choices=("none", "best", "all"))
    checkpoint_dir: str | None = _opt(None, "checkpoint folder (default OUT/checkpoints; "
                                      "shared storage for Ray/Slurm runs that should resume "
                                      "on another node)", metavar="DIR")


@dataclass(frozen=True)
class Option:
    """One option as the schema and the CLI see it (the same for every class that has it)."""

    key: str                    # suite key (under ``cluster:``, or top-level when ``top``)
    name: str                   # the field of the options classes
    default: Any
    help: str                   # without the executors it applies to, nor the default
    types: tuple                # what a suite may write
    choices: tuple | None
    minimum: int | float | None
    metavar: str | None
    top: bool
    executors: tuple[str, ...]  # the executors that read it (empty: every one)

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def cli_type(self) -> type:
        """What argparse turns the flag's word into (the options class checks the rest)."""
        return next(t for t in (str, float, int) if t in self.types)

    def describe(self) -> str:
        """The help text with the executors it applies to and its default."""
        text = f"{'/'.join(self.executors)}: {self.help}" if self.executors else self.help
        return text if self.default is None else f"{text} (default {self.default})"

    def check(self, value: Any) -> None:
        """ValueError, naming the flag, for a value out of its choices or below its minimum."""
        if self.choices is not None and value is not None and value not in self.choices:
            raise ValueError(f"{self.flag} must be one of {list(self.choices)}, got {value!r}")
        if (self.minimum is not None and isinstance(value, (int, float))
                and not isinstance(value, bool) and value < self.minimum):
            raise ValueError(f"{self.flag} must be >= {self.minimum}, got {value}")


def _types(hint: Any) -> tuple:
    """``int | None`` -> (int, NoneType); ``float`` -> (float, int): a YAML ``1`` is a float."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    out: list = []
    for t in parts:
        out += [float, int] if t is float else [t]
    return tuple(out)


def _options() -> dict[str, Option]:
    found: dict[str, Option] = {}
    for cls in (Common, *EXECUTOR_OPTIONS.values()):
        for f in dataclasses.fields(cls):
            meta = f.metadata
            key = meta["key"] or f.name
            owner = () if cls is Common else (cls.name,)
            seen = found.get(key)
            option = Option(key, f.name, f.default, meta["help"], meta["accepts"] or _types(f.type),
                            meta["choices"], meta["minimum"], meta["metavar"], meta["top"],
                            (seen.executors if seen else ()) + owner)
            if seen is not None and dataclasses.replace(seen, executors=option.executors) != option:
                raise TypeError(f"option {key!r} differs between the executors' options")
            found[key] = option
    first, *rest = (f.name for f in dataclasses.fields(Common))  # the executor, then its options
    return {first: found[first], **{k: o for k, o in found.items() if k not in rest},
            **{k: found[k] for k in rest}}


OPTIONS: dict[str, Option] = _options()  # by key: executor, each executor's, the checkpoints


def options_for(cls: type, values: dict) -> Any:
    """An instance of the options class ``cls`` from ``values`` (by key; a key left out takes
    its default), each value checked.

    Raises:
        ValueError: one line naming the flag of a bad value.
    """
    kwargs = {}
    for f in dataclasses.fields(cls):
        option = OPTIONS[f.metadata["key"] or f.name]
        if option.key in values:
            option.check(values[option.key])
            kwargs[f.name] = values[option.key]
    return cls(**kwargs)
