"""Suite schema: the keys, their types and defaults, ``${VAR}`` interpolation, ``--set``.

The schema is a tree of sections (dicts) whose leaves are ``Key``s; ``check_section``
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

from mlbench.execution import OPTIONS, Option
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
    maximum: int | float | None = None  # largest allowed number


# Seeds are 32-bit: what every RNG of the harness takes (NumPy's legacy seed, DataLoader
# worker seeds) and what SQLite stores as an integer.
SEED_MAX = 2**32 - 1

# A section is a dict of name -> Key | dict (a nested section).
SIM = {
    "images": Key((int,), 2000, doc="number of images to render", minimum=1),
    "size": Key((int,), 128, doc="side of the rendered PNGs in pixels", minimum=16),
    "seed": Key((int,), 0, doc="generator seed (same seed -> same files)", minimum=0,
                maximum=SEED_MAX),
    # the test split's knobs (mlbench.data.sim.split_rows); at their defaults (None) they are
    # left out of the config, so a suite without them keeps its run ids
    "test_fraction": Key((float, int, type(None)), None, minimum=0, maximum=0.95,
                         doc="test split's share of the folder (default 0.2); the training "
                         "side keeps its images, the test split is drawn on top"),
    "sick_preference": Key((float, int, type(None)), None, minimum=0,
                           doc="how strongly the test split prefers sick patients (default "
                           "2.0; 0: none)"),
}
DATASET = {
    "root": Key((str, type(None)), None, doc="ChestX-ray14 folder (NIH layout)"),
    "sim": Key((dict, type(None)), None, doc="generate CXR14-sim into root if absent"),
    "image_size": Key((int,), 224, doc="side of the training images (prepared cache)", minimum=8),
    "val_fraction": Key((float, int), 0.1, doc="share of train_val patients for validation"),
    "view": Key((str,), "all", choices=VIEWS),
    "split_seed": Key((int,), 0, doc="seed of the train/val patient split", minimum=0,
                      maximum=SEED_MAX),
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
    "weights": Key((str, dict, type(None)), None,
                   doc="local weights file for the backbone, or a mapping backbone -> file "
                   "(a backbone it leaves out: hub weights if pretrained)"),
    "in_chans": Key((int,), 1, choices=(1, 3), doc="1: one-channel stem; 3: gray replicated"),
    "head_kwargs": Key((dict,), {}),
    "no_finding": Key((bool,), False,
                      doc="train an extra 'No Finding' output (healthy images give pairwise "
                      "losses a signal); left out of evaluation and the mean AUC"),
}
# ``train.sampler`` (mlbench.train.sampler); unset or "random" is the uniform shuffle, left out
# of the run config (so the run ids from before the key are kept).
SAMPLERS = (None, "random", "class_aware")
# Keys that enter a run's config only when they differ from the default (added after run ids
# existed: a run that does not use them keeps its id): section -> key -> the defaults.
OPTIONAL_KEYS = {"train": {"sampler": (None, "random")}, "model": {"no_finding": (False,)}}
# Harness-level training keys; the engine's TrainConfig fields are added to these.
TRAIN_HARNESS = {
    "batch_size": Key((int,), 32, minimum=1),
    "eval_batch_size": Key((int,), 64, minimum=1),
    "num_workers": Key((int,), 0, doc="DataLoader worker processes", minimum=0),
    "augment": Key((bool, dict), True,
                   doc="true (the default recipe), false (none) or a mapping of AUGMENT keys"),
    "device": Key((str,), "auto", choices=("auto", "cpu", "cuda")),
    "deterministic": Key((bool,), True,
                         doc="deterministic algorithms, no cuDNN autotuning (false: faster on GPU)"),
    "threads": Key((int,), 1, minimum=1,
                   doc="torch threads per run (fixed, so CPU numbers do not depend on workers)"),
    "sampler": Key((str, type(None)), None, choices=SAMPLERS,
                   doc="training order: random (a uniform shuffle, the default) or class_aware "
                   "(a finding or 'no finding' drawn uniformly, then an image of it)"),
}
EVAL = {
    "bootstrap": Key((int,), 1000, doc="bootstrap resamples for the 95% CIs (0: none)", minimum=0),
    "reference": Key((str,), "bce", doc="loss the leaderboard compares against (Δ, DeLong)"),
    # not part of any run id: every finished run is scored on each after training
    # (mlbench.driver.testsets); adding one to a finished suite trains nothing
    "test_sets": Key((list, str), ["nih"],
                     doc="test sets every run is scored on (mlbench.data.testsets: nih, "
                     "nih-expert, nih-bbox, padchest, chexpert, mimic-cxr); an entry is a "
                     "name or a mapping {name: ..., root: ..., other options}"),
}
# What the leaderboard tests first (mlbench.suite.contrasts); not part of any run id.
ANALYSIS = {
    "primary": Key((list, str), [],
                   doc="primary contrasts 'A vs B' (grid.loss labels; optional ' @ backbone[/head]'"
                   "), their own Holm family; every other comparison is exploratory"),
    "margin": Key((float, int, type(None)), None, minimum=0,
                  doc="equivalence margin in mean AUC: verdicts equivalent / non-inferior "
                  "(two one-sided tests at the same level)"),
    "expect": Key((dict,), {}, doc="controls: primary contrast -> its expected verdict (or a "
                  "list), printed beside the observed one (mlbench.suite.contrasts)"),
}
# Where runs execute (mlbench.driver); not part of any run id. Derived from the executors'
# options classes (``mlbench.execution``), as the CLI flags that override these are.
def _option_key(option: Option) -> Key:
    choices = option.choices
    if choices is not None and option.default is None:
        choices = (*choices, None)
    return Key(option.types, option.default, choices=choices,
               doc=f"{option.describe()} ({option.flag})", minimum=option.minimum)


CLUSTER = {o.key: _option_key(o) for o in OPTIONS.values() if not o.top}
# Image augmentation of the training split (``train.augment``): a mapping names exactly what
# is on (a key left out is off). ``true`` is AUGMENT_TRUE; ``false`` is nothing. Applied by
# ``mlbench.data.transforms.build_transforms``; docs/HARNESS.md has the anchors' recipes.
AUGMENT = {
    "hflip": Key((float, int, bool), 0.0, minimum=0,
                 doc="probability of a horizontal flip (true: 0.5)"),
    "rotate": Key((float, int), 0.0, minimum=0, doc="random rotation, +- degrees"),
    "translate": Key((float, int), 0.0, minimum=0, doc="random shift, fraction of the side"),
    "scale": Key((list, type(None)), None, doc="random zoom range [lo, hi], e.g. [0.92, 1.08]"),
    "resized_crop": Key((list, type(None)), None,
                        doc="random resized crop: area range [lo, hi] in (0, 1], e.g. [0.5, 1.0]"),
    "brightness": Key((float, int), 0.0, minimum=0, doc="brightness jitter factor"),
    "contrast": Key((float, int), 0.0, minimum=0, doc="contrast jitter factor"),
    "randaugment": Key((dict, type(None)), None,
                       doc="RandAugment {num_ops: N, magnitude: M} (torchvision, 0..30)"),
}
# ``augment: true`` (the recipe before augmentation became a mapping; same transforms).
AUGMENT_TRUE = {"hflip": 0.0, "rotate": 7.0, "translate": 0.05, "scale": [0.92, 1.08],
                "resized_crop": None, "brightness": 0.15, "contrast": 0.15, "randaugment": None}
# Tuning (``mlbench.suite.tuning``): lists of values tried per loss with an equal budget, two stages.
TUNE = {
    "train": Key((dict,), {}, doc="train key -> list of values (every loss tries them)"),
    "loss": Key((dict,), {}, doc="grid.loss entry -> {kwarg or {placeholder}: list of values}"),
    "budget": Key((int, type(None)), None, minimum=1,
                  doc="settings per loss (default: the smallest loss's number of settings)"),
    "budget_per_loss": Key((dict,), {}, doc="grid.loss entry -> its own budget (exceptions)"),
    "stages": Key((int,), 2, choices=(1, 2),
                  doc="2: every setting on the first seed, the best (validation) on the rest; "
                  "1: every setting on every seed"),
    "seed": Key((int,), 0, doc="seed of the draw when a loss has more settings than the budget"),
    "fresh_seeds": Key((bool,), False,
                       doc="stages 2: report the seeds after the first only (the selection "
                       "run on seed 0 left out of the estimate: no winner's curse)"),
}
# Experiment tracking (mlbench.logs.tracking); not part of any run id. CLI: --mlflow, --tensorboard.
TRACKING = {
    "mlflow": Key((bool,), False, doc="log each stored run to MLflow (--mlflow)"),
    "mlflow_uri": Key((str, type(None)), None,
                      doc="MLflow tracking URI (--mlflow-uri; default sqlite:///OUT/mlflow.db)"),
    "experiment": Key((str, type(None)), None, doc="MLflow experiment (default: the suite name)"),
    "tensorboard": Key((bool,), False,
                       doc="TensorBoard event files under OUT/tb/<run id> (--tensorboard)"),
    "artifacts": Key((bool,), True, doc="MLflow: the best checkpoint as an artifact"),
}
TOP = {
    "name": Key((str,), doc="suite name"),
    "description": Key((str,), ""),
    "dataset": DATASET,
    "grid": GRID,
    "seeds": Key((list, int, dict), [0],
                 doc="every cell's seeds, or {default: [...], cells: [{only: {...}, seeds: "
                 "[...]}]} (mlbench.suite.grid.cell_seeds)"),
    "model": MODEL,
    "train": TRAIN_HARNESS,
    "eval": EVAL,
    "analysis": ANALYSIS,
    "output": Key((str, type(None)), None, doc="output folder (default runs/<name>)"),
    "workers": _option_key(OPTIONS["workers"]),
    "cluster": CLUSTER,
    "tracking": TRACKING,
    "tune": TUNE,
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
        try:
            node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise SuiteError(
                f"--set {dotted}: the value {text!r} is not valid YAML ({yaml_problem(exc)}); "
                f"quote a string (--set '{dotted}=\"...\"') or close the list or mapping "
                "(--set 'seeds=[0, 1]')") from None
    return raw


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's reason in one line, e.g. "expected ',' or ']', but got '<stream end>'"."""
    problem = getattr(exc, "problem", None)
    where = getattr(exc, "problem_mark", None)
    if problem is None:
        return " ".join(str(exc).split())
    return f"{problem} at line {where.line + 1}, column {where.column + 1}" if where else problem


def check_section(raw: Any, schema: dict, path: str) -> dict:
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
            out[name] = check_section(raw.get(name), spec, where)
            continue
        if name not in raw:
            if spec.default is _REQUIRED:
                raise SuiteError(f"missing required key `{where}` ({spec.doc})")
            out[name] = copy.deepcopy(spec.default)
            continue
        value = yaml_float(raw[name]) if float in spec.types else raw[name]
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
        if spec.maximum is not None and isinstance(value, (int, float)) and value > spec.maximum:
            raise SuiteError(f"`{where}` must be <= {spec.maximum}, got {value!r}")
        if spec.types[0] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `lr: 1` and `lr: 1.0` are one config, so one run id
        out[name] = value
    return out


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def yaml_float(value: Any) -> Any:
    """``1e-3`` as a float (PyYAML reads YAML 1.1, where it is a string)."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value.strip()) else value


def as_list(value: Any) -> list:
    """A grid axis or ``seeds`` as a list (a single value is a list of one)."""
    return value if isinstance(value, list) else [value]


def normalise_augment(value: Any, where: str = "train.augment") -> bool | dict:
    """``train.augment`` in its canonical form, so one pipeline has one run id.

    ``true`` / ``false`` stay as they are (existing run ids are kept); a mapping is checked
    against ``AUGMENT``, filled with the off values, and becomes ``true`` when it is the
    default recipe (``AUGMENT_TRUE``) and ``false`` when everything is off.

    Raises:
        SuiteError: names the key and what is allowed.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict):
        raise SuiteError(f"`{where}` must be true, false or a mapping with keys "
                         f"{sorted(AUGMENT)}, got {value!r}")
    out = check_section(value, AUGMENT, where)
    if out["hflip"] is True or out["hflip"] is False:
        out["hflip"] = 0.5 if out["hflip"] else 0.0
    for name in ("hflip", "rotate", "translate", "brightness", "contrast"):
        out[name] = float(out[name])
    if out["hflip"] > 1:
        raise SuiteError(f"`{where}.hflip` is a probability in [0, 1], got {out['hflip']}")
    if out["rotate"] > 180:
        raise SuiteError(f"`{where}.rotate` must be <= 180 degrees, got {out['rotate']}")
    if out["translate"] > 1:
        raise SuiteError(f"`{where}.translate` must be <= 1 (fraction of the side), "
                         f"got {out['translate']}")
    for name, top in (("scale", None), ("resized_crop", 1.0)):
        rng = out[name]
        if rng is None:
            continue
        rng = [yaml_float(x) for x in rng]
        ok = (len(rng) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                    for x in rng) and 0 < rng[0] <= rng[1]
              and (top is None or rng[1] <= top))
        if not ok:
            limit = f"0 < lo <= hi <= {top}" if top else "0 < lo <= hi"
            raise SuiteError(f"`{where}.{name}` must be [lo, hi] with {limit}, got {out[name]!r}")
        out[name] = [float(x) for x in rng]
    ra = out["randaugment"]
    if ra is not None:
        ra = check_section(ra, RANDAUGMENT, f"{where}.randaugment")
        if ra["magnitude"] > 30:
            raise SuiteError(f"`{where}.randaugment.magnitude` must be <= 30, got {ra['magnitude']}")
        out["randaugment"] = ra
    if out == AUGMENT_TRUE:
        return True
    if out == check_section({}, AUGMENT, where):
        return False
    return out


RANDAUGMENT = {
    "num_ops": Key((int,), 2, minimum=1, doc="operations per image"),
    "magnitude": Key((int,), 9, minimum=0, doc="strength, 0..30"),
}



def normalise_test_sets(value: Any, where: str = "eval.test_sets") -> list[dict]:
    """``eval.test_sets`` as a list of ``{"name": str, **options}`` (a bare name has no
    options), names unique, ``nih`` (the run's own test split) first when listed. Names are
    checked against the registry when the suite runs (``mlbench.driver.testsets``): loading a
    suite imports no data code.

    Raises:
        SuiteError: names the entry and what is allowed.
    """
    out, seen = [], set()
    for i, entry in enumerate(as_list(value)):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not entry["name"].strip():
            raise SuiteError(f"`{where}[{i}]` must be a test-set name or a mapping with a "
                             f"`name` (e.g. {{name: chexpert, root: /data/CheXpert}}), "
                             f"got {entry!r}")
        entry = {**entry, "name": entry["name"].strip()}
        if entry["name"] in seen:
            raise SuiteError(f"`{where}[{i}]`: test set {entry['name']!r} is listed twice")
        seen.add(entry["name"])
        out.append(entry)
    if not out:
        raise SuiteError(f"`{where}` is empty: list at least one test set (default: [nih])")
    return out


def train_schema() -> dict:
    """Valid ``train`` keys: the harness's plus the engine's ``TrainConfig`` fields."""
    from mlbench.train import TrainConfig

    schema = dict(TRAIN_HARNESS)
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

