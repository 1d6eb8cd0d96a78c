"""Suite schema: the keys, their types and defaults, ``${VAR}`` interpolation, ``--set``.

The schema is a tree of sections (dicts) whose leaves are ``Key``s; ``_check_section``
type-checks a raw YAML tree against it, fills defaults and names the key path of any
error. Torch-free: the engine's ``TrainConfig`` is imported only by ``train_schema``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from mlbench.layout import MISSING, VIEWS


class SuiteError(ValueError):
    """A suite that cannot be run; the message says which key and what is allowed."""


_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One key of the schema: allowed types, default, allowed values, help text."""

    types: tuple
    default: Any = _REQUIRED
    choices: tuple | None = None
    doc: str = ""
    minimum: int | float | None = None  # smallest allowed number


# A section is a dict of name -> Key | dict (a nested section).
SIM = {
    "images": Key((int,), 2000, doc="number of images to render", minimum=1),
    "size": Key((int,), 128, doc="side of the rendered PNGs in pixels", minimum=16),
    "seed": Key((int,), 0, doc="generator seed (same seed -> same files)"),
}
DATASET = {
    "root": Key((str, type(None)), None, doc="ChestX-ray14 folder (NIH layout)"),
    "sim": Key((dict, type(None)), None, doc="generate CXR14-sim into root if absent"),
    "image_size": Key((int,), 224, doc="side of the training images (prepared cache)", minimum=8),
    "val_fraction": Key((float, int), 0.1, doc="share of train_val patients for validation"),
    "view": Key((str,), "all", choices=VIEWS),
    "split_seed": Key((int,), 0, doc="seed of the train/val patient split"),
    "missing": Key((str,), "error", choices=MISSING),
    "cache_dir": Key((str, type(None)), None,
                     doc="prepared-cache folder (default ROOT/.mlbench_cache; for a read-only ROOT)"),
}
GRID = {
    "backbone": Key((list, str), doc="timm model names"),
    "head": Key((list, str), ["linear"], doc="head registry names"),
    "loss": Key((list, str, dict), doc="loss specs: 'bce+0.1*msml' or mapping form"),
}
MODEL = {
    "pretrained": Key((bool,), False, doc="ImageNet weights from the hub"),
    "weights": Key((str, type(None)), None, doc="local weights file for the backbone"),
    "in_chans": Key((int,), 1, choices=(1, 3), doc="1: one-channel stem; 3: gray replicated"),
    "head_kwargs": Key((dict,), {}),
}
# Harness-level training keys; the engine's TrainConfig fields are added to these.
TRAIN_HARNESS = {
    "batch_size": Key((int,), 32, minimum=1),
    "eval_batch_size": Key((int,), 64, minimum=1),
    "num_workers": Key((int,), 0, doc="DataLoader worker processes", minimum=0),
    "augment": Key((bool,), True),
    "device": Key((str,), "auto", choices=("auto", "cpu", "cuda")),
    "deterministic": Key((bool,), True,
                         doc="deterministic algorithms, no cuDNN autotuning (false: faster on GPU)"),
    "threads": Key((int,), 1, minimum=1,
                   doc="torch threads per run (fixed, so CPU numbers do not depend on workers)"),
}
EVAL = {
    "bootstrap": Key((int,), 1000, doc="bootstrap resamples for the 95% CIs (0: none)", minimum=0),
    "reference": Key((str,), "bce", doc="loss the leaderboard compares against (Δ, DeLong)"),
}
# Where runs execute (mlbench.driver); not part of any run id. CLI options override these.
CLUSTER = {
    "executor": Key((str,), "local", choices=("local", "ray", "slurm"),
                    doc="local processes, Ray tasks or Slurm jobs (--executor)"),
    "gpus": Key((list, str, int, type(None)), None,
                doc="local: GPU ids, one worker each (--gpus; default every visible GPU)"),
    "ray_address": Key((str, type(None)), None,
                       doc="ray: cluster address (--ray-address; default $RAY_ADDRESS, else local)"),
    "gpus_per_run": Key((float, int, type(None)), None, minimum=0,
                        doc="ray/slurm: GPUs per run (default 1 with CUDA, else 0)"),
    "cpus_per_run": Key((int, type(None)), None, minimum=1,
                        doc="ray/slurm: CPUs per run (default train.threads + train.num_workers)"),
    "max_retries": Key((int,), 3, minimum=0, doc="ray: retries when a run's worker/node dies"),
    "partition": Key((str, type(None)), None, doc="slurm: partition"),
    "time_min": Key((int,), 240, minimum=1, doc="slurm: time limit per run (minutes)"),
    "mem_gb": Key((int, type(None)), None, minimum=1, doc="slurm: memory per run"),
    "array_parallelism": Key((int,), 16, minimum=1, doc="slurm: runs of the array at once"),
    "keep_checkpoints": Key((str,), "best", choices=("none", "best", "all"),
                            doc="what stays of a stored run's checkpoints"),
    "checkpoint_dir": Key((str, type(None)), None, doc="default OUT/checkpoints"),
}
TOP = {
    "name": Key((str,), doc="suite name"),
    "description": Key((str,), ""),
    "dataset": DATASET,
    "grid": GRID,
    "seeds": Key((list, int), [0]),
    "model": MODEL,
    "train": TRAIN_HARNESS,
    "eval": EVAL,
    "output": Key((str, type(None)), None, doc="output folder (default runs/<name>)"),
    "workers": Key((int,), 1, doc="parallel worker processes (--workers overrides)", minimum=1),
    "cluster": CLUSTER,
}
GRID_AXES = ("backbone", "head", "loss", "seed")


# ---------------------------------------------------------------- interpolation
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict | None = None, path: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a YAML tree.

    A string that is one whole ``${...}`` is YAML-parsed after substitution, so
    ``epochs: ${EPOCHS:-2}`` gives an int.

    Raises:
        SuiteError: a variable is unset and has no default (names the key path).
    """
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate(v, env, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        got = env.get(name)
        if got:  # unset or empty -> default, as in the shell's ${VAR:-default}
            return got
        if default is None:
            raise SuiteError(
                f"`{path}`: environment variable {name} is not set and has no default "
                f"(write ${{{name}:-default}} or export {name}=...)"
            )
        return default

    out = _VAR.sub(sub, value)
    whole = _VAR.fullmatch(value.strip())
    return yaml.safe_load(out) if whole and out.strip() else out


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------- overrides, validation
def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (values YAML-parsed) to a raw suite tree."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        if "=" not in item:
            raise SuiteError(f"--set expects key.path=value, got {item!r}")
        dotted, text = item.split("=", 1)
        parts = [p for p in dotted.strip().split(".") if p]
        if not parts:
            raise SuiteError(f"--set expects key.path=value, got {item!r}")
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise SuiteError(f"--set {dotted}: `{'.'.join(parts[: i + 1])}` is not a section")
            node = nxt
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""
    return raw


def _check_section(raw: Any, schema: dict, path: str) -> dict:
    """Type-check ``raw`` against ``schema``, fill defaults; returns a new dict."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SuiteError(f"`{path or '<suite>'}` must be a mapping, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in schema]
    if unknown:
        bad = _join(path, unknown[0])
        raise SuiteError(f"unknown key `{bad}`; valid keys of `{path or '<suite>'}`: {sorted(schema)}")
    out = {}
    for name, spec in schema.items():
        where = _join(path, name)
        if isinstance(spec, dict):
            out[name] = _check_section(raw.get(name), spec, where)
            continue
        if name not in raw:
            if spec.default is _REQUIRED:
                raise SuiteError(f"missing required key `{where}` ({spec.doc})")
            out[name] = copy.deepcopy(spec.default)
            continue
        value = _yaml_float(raw[name]) if float in spec.types else raw[name]
        ok = isinstance(value, spec.types) and not (
            isinstance(value, bool) and bool not in spec.types
        )
        if not ok:
            allowed = " or ".join(t.__name__ if t is not type(None) else "null" for t in spec.types)
            raise SuiteError(f"`{where}` must be {allowed}, got {value!r} ({type(value).__name__})")
        if spec.choices is not None and value not in spec.choices:
            raise SuiteError(f"`{where}` must be one of {list(spec.choices)}, got {value!r}")
        if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
            raise SuiteError(f"`{where}` must be >= {spec.minimum}, got {value!r}")
        if spec.types[0] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `lr: 1` and `lr: 1.0` are one config, so one run id
        out[name] = value
    return out


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _yaml_float(value: Any) -> Any:
    """``1e-3`` as a float (PyYAML reads YAML 1.1, where it is a string)."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value.strip()) else value


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]



def train_schema() -> dict:
    """Valid ``train`` keys: the harness's plus the engine's ``TrainConfig`` fields."""
    schema = dict(TRAIN_HARNESS)
    try:
        from mlbench.engine import TrainConfig
    except ModuleNotFoundError as exc:  # engine not built yet: harness keys only
        if exc.name != "mlbench.engine":
            raise
        return schema
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in schema:
            continue
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if default is dataclasses.MISSING:
            default = _REQUIRED
        types = _types_of(default)
        if default is None:  # ``int | None``: the annotation says which numbers are allowed
            types = _optional_types(hints.get(f.name)) or types
        schema[f.name] = Key(types, default)
    return schema


def _optional_types(hint: Any) -> tuple | None:
    """``int | None`` -> (int, NoneType); ``float | None`` -> (float, int, NoneType)."""
    args = set(typing.get_args(hint))
    if type(None) not in args or not args - {type(None)} <= {int, float}:
        return None
    inner = (float, int) if float in args else (int,)
    return (*inner, type(None))


def _types_of(default: Any) -> tuple:
    if default is None or default is _REQUIRED:
        return (int, float, str, bool, list, dict, type(None))
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, (list, tuple)):
        return (list,)
    return (type(default),)

