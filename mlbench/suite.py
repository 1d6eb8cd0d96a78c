"""Suite YAML -> validated, resolved run configs with stable ids.

A suite names a dataset, a grid (backbone x head x loss), seeds and the training and
evaluation settings. Loading goes in layers: YAML -> ``${VAR:-default}`` interpolation ->
``--set key=value`` overrides -> defaults filled in -> strict validation (unknown keys are
an error naming the key path and listing the valid keys) -> one run per grid cell x seed.

The structure is checked without importing torch (``load_suite``), so a missing dataset is
reported at once; loss and head names are checked against their registries
(``check_names``), the only source of valid names.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlbench.layout import LABEL_FILES, NIH_URL, SIM_MARKER, SPLIT_FILES


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
    "view": Key((str,), "all", choices=("all", "PA", "AP")),
    "split_seed": Key((int,), 0, doc="seed of the train/val patient split"),
    "missing": Key((str,), "error", choices=("error", "skip")),
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
}
EVAL = {
    "bootstrap": Key((int,), 1000, doc="bootstrap resamples for the 95% CIs (0: none)", minimum=0),
    "reference": Key((str,), "bce", doc="loss the leaderboard compares against (Δ, DeLong)"),
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


# ---------------------------------------------------------------- runs
@dataclass
class Run:
    """One grid cell x seed: the resolved config and its stable id."""

    id: str
    config: dict = field(repr=False)

    @property
    def backbone(self) -> str:
        return self.config["backbone"]

    @property
    def head(self) -> str:
        return self.config["head"]

    @property
    def loss(self) -> str:
        return loss_label(self.config["loss"])

    @property
    def seed(self) -> int:
        return self.config["seed"]


@dataclass
class Suite:
    """A loaded, validated suite."""

    name: str
    config: dict
    runs: list[Run]
    source: str | None = None

    @property
    def output(self) -> Path:
        return Path(self.config["output"])

    @property
    def dataset(self) -> dict:
        return self.config["dataset"]


def canonical_json(obj: Any) -> str:
    """The canonical text of a config: JSON, sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id(config: dict) -> str:
    """Stable id of a resolved run config: 12 hex digits of SHA-256 of its canonical JSON.

    Where the dataset is generated (``sim``), its parameters identify the data and the
    folder it lands in does not enter the id; nor does where the prepared cache is kept
    (``dataset.cache_dir``).
    """
    ident = copy.deepcopy(config)
    ident.get("dataset", {}).pop("cache_dir", None)
    if ident.get("dataset", {}).get("sim"):
        ident["dataset"].pop("root", None)
    ident.pop("suite", None)
    return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:12]


def normalise_loss(spec: Any, where: str) -> Any:
    """Loss spec in its canonical form: strings without spaces, mappings as given."""
    if isinstance(spec, str):
        text = re.sub(r"\s+", "", spec)
        if not text:
            raise SuiteError(f"`{where}`: empty loss spec")
        return text
    if isinstance(spec, dict):
        if "name" not in spec:
            raise SuiteError(f"`{where}`: a loss mapping needs `name`, got keys {sorted(spec)}")
        return dict(spec)
    if isinstance(spec, list) and spec and all(isinstance(t, dict) for t in spec):
        return [normalise_loss(t, f"{where}[{i}]") for i, t in enumerate(spec)]
    raise SuiteError(f"`{where}` must be a spec string like 'bce+0.1*msml' or a mapping, got {spec!r}")


def loss_label(spec: Any) -> str:
    """Short display label of a loss spec (leaderboard row name)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return "+".join(_term_label(t) for t in spec)
    return _term_label(spec)


def _term_label(term: dict) -> str:
    weight = term.get("weight")
    kwargs = {k: v for k, v in term.items() if k not in ("name", "weight")}
    text = term["name"]
    if kwargs:
        text += "(" + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")"
    return f"{weight}*{text}" if weight not in (None, 1, 1.0) else text


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


def load_suite(
    source: str | Path | dict,
    *,
    overrides: list[str] | None = None,
    output: str | None = None,
    env: dict | None = None,
    train_keys: dict | bool | None = None,
) -> Suite:
    """Read, interpolate, override, validate and expand a suite.

    Args:
        source: path of a suite YAML, or an already-parsed mapping.
        overrides: ``key.path=value`` strings (``--set``).
        output: output folder, replacing the suite's ``output``.
        env: variables for interpolation (default ``os.environ``).
        train_keys: schema of ``train`` (default: ``train_schema()``, which imports the
            engine); ``False`` passes ``train`` through unchecked (a quick first look).

    Raises:
        SuiteError: the message names the offending key.
    """
    path = None
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        path = str(source)
        try:
            raw = yaml.safe_load(Path(source).read_text())
        except FileNotFoundError:
            raise SuiteError(f"suite file not found: {source}") from None
        except yaml.YAMLError as exc:
            raise SuiteError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite is a mapping with keys {sorted(TOP)}")
    raw = apply_overrides(raw, overrides or [])
    if output is not None:
        raw["output"] = output
    raw = interpolate(raw, env)
    schema = dict(TOP)
    if train_keys is False:
        schema["train"] = Key((dict, type(None)), {})
    else:
        schema["train"] = train_keys if train_keys is not None else train_schema()
    cfg = _check_section(raw, schema, "")
    if cfg["output"] is None:
        cfg["output"] = str(Path("runs") / cfg["name"])
    _check_dataset(cfg)
    runs = expand(cfg)
    return Suite(name=cfg["name"], config=cfg, runs=runs, source=path)


def _check_dataset(cfg: dict) -> None:
    ds = cfg["dataset"]
    if ds["sim"] is not None:
        ds["sim"] = _check_section(ds["sim"], SIM, "dataset.sim")
        if ds["root"] is None:
            ds["root"] = str(Path(cfg["output"]) / "cxr14-sim")
    elif ds["root"] is None:
        raise SuiteError("`dataset` needs `root` (a ChestX-ray14 folder) or `sim` (generate CXR14-sim)")
    if not 0 <= ds["val_fraction"] < 1:
        raise SuiteError(f"`dataset.val_fraction` must be in [0, 1), got {ds['val_fraction']}")


def expand(cfg: dict) -> list[Run]:
    """One ``Run`` per backbone x head x loss x seed, in suite order."""
    grid = cfg["grid"]
    backbones = _as_list(grid["backbone"])
    heads = _as_list(grid["head"])
    losses_ = [normalise_loss(s, f"grid.loss[{i}]") for i, s in enumerate(_as_list(grid["loss"]))]
    seeds = _as_list(cfg["seeds"])
    for axis, values in (("grid.backbone", backbones), ("grid.head", heads), ("seeds", seeds)):
        kind = int if axis == "seeds" else str
        for i, v in enumerate(values):
            if not isinstance(v, kind) or isinstance(v, bool):
                raise SuiteError(f"`{axis}[{i}]` must be {kind.__name__}, got {v!r}")
        if not values:
            raise SuiteError(f"`{axis}` is empty")
    if not losses_:
        raise SuiteError("`grid.loss` is empty")
    shared = {
        "dataset": cfg["dataset"],
        "model": cfg["model"],
        "train": cfg["train"],
        "eval": {"bootstrap": cfg["eval"]["bootstrap"]},
    }
    runs, seen = [], set()
    for backbone, head, loss, seed in itertools.product(backbones, heads, losses_, seeds):
        config = {"suite": cfg["name"], "backbone": backbone, "head": head, "loss": loss,
                  "seed": seed, **copy.deepcopy(shared)}
        rid = run_id(config)
        if rid in seen:  # the same cell listed twice runs once
            continue
        seen.add(rid)
        runs.append(Run(rid, config))
    return runs


# ---------------------------------------------------------------- filters, names
def parse_only(items: list[str] | None) -> dict[str, list[str]]:
    """``["loss=msml,bce", "head=linear"]`` -> ``{"loss": ["msml", "bce"], "head": ["linear"]}``.

    Tokens are separated by commas outside parentheses (a mapping loss's label
    ``asl(gamma_neg=2,gamma_pos=0)`` is one value); a token without ``key=`` adds a value
    to the last key.
    """
    out: dict[str, list[str]] = {}
    key = None
    for item in items or []:
        for token in re.split(r",(?![^(]*\))", item):
            token = token.strip()
            if not token:
                continue
            if "=" in token and "(" not in token.split("=", 1)[0]:
                key, value = (s.strip() for s in token.split("=", 1))
                if key not in GRID_AXES:
                    raise SuiteError(f"--only: unknown key {key!r}; valid keys: {list(GRID_AXES)}")
            elif key is None:
                raise SuiteError(f"--only expects key=value, got {token!r}")
            else:
                value = token
            out.setdefault(key, []).append(re.sub(r"\s+", "", value))
    return out


def filter_runs(runs: list[Run], only: dict[str, list[str]]) -> list[Run]:
    """Keep runs whose backbone/head/loss/seed match every ``--only`` key."""
    for key, wanted in only.items():
        have = {str(getattr(r, key)) for r in runs}
        missing = [w for w in wanted if w not in have]
        if missing:
            raise SuiteError(f"--only {key}={missing[0]} matches no run; {key} values: {sorted(have)}")
        runs = [r for r in runs if str(getattr(r, key)) in wanted]
    return runs


def check_names(suite: Suite) -> None:
    """Check loss specs and head names against their registries (imports torch).

    Raises:
        SuiteError: names the grid entry and lists the valid names.
    """
    import difflib

    import timm

    import losses
    from mlbench.engine import TrainConfig
    from mlbench.models import create_head, list_heads

    for i, name in enumerate(_as_list(suite.config["grid"]["backbone"])):
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=5)
            raise SuiteError(f"`grid.backbone[{i}]`: unknown timm backbone {name!r}; close "
                             f"matches: {close} (all names: timm.list_models())")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        TrainConfig(**{k: v for k, v in suite.config["train"].items() if k in fields})
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"`train`: {exc}") from None
    weights = suite.config["model"]["weights"]
    if weights is not None and not Path(weights).is_file():
        raise SuiteError(f"`model.weights`: file not found: {weights}")
    heads = list_heads()
    head_kwargs = suite.config["model"]["head_kwargs"] or {}
    for i, head in enumerate(_as_list(suite.config["grid"]["head"])):
        if head not in heads:
            raise SuiteError(f"`grid.head[{i}]`: unknown head {head!r}; valid heads: {heads}")
        try:  # a tiny instance: the options are checked by the head itself
            create_head(head, 4, 2, **head_kwargs)
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"`model.head_kwargs` for head {head!r}: {exc}") from None
    for i, spec in enumerate(_as_list(suite.config["grid"]["loss"])):
        try:
            losses.create_loss(normalise_loss(spec, f"grid.loss[{i}]"), stats=_dummy_stats())
        except ValueError as exc:
            raise SuiteError(f"`grid.loss[{i}]` ({loss_label(spec)}): {exc}") from None
    ref = suite.config["eval"]["reference"]
    try:
        losses.create_loss(ref, stats=_dummy_stats())
    except ValueError as exc:
        raise SuiteError(f"`eval.reference`: {exc}") from None


def _dummy_stats() -> dict:
    """Statistics of the right shape, so losses that need them can be built for checking."""
    import numpy as np

    return {"class_counts": np.ones(14, dtype=np.int64), "num_samples": 14}


def describe_runs(runs: list[Run], status: dict | None = None) -> str:
    """Table of runs (``--dry-run``); ``status`` maps run id -> stored status."""
    from tabulate import tabulate

    status = status or {}
    rows = [(r.id, r.backbone, r.head, r.loss, r.seed, status.get(r.id, "new")) for r in runs]
    return tabulate(rows, headers=["id", "backbone", "head", "loss", "seed", "status"])


# ---------------------------------------------------------------- fast data check

def sim_root_problem(ds: dict) -> str | None:
    """Why ``dataset.root`` cannot take the CXR14-sim that ``dataset.sim`` asks for, or None.

    The runner generates CXR14-sim into an absent or empty folder and marks it with
    ``SIM_MARKER``; a folder with other contents and no marker (real ChestX-ray14, say)
    would be trained on while the runs are labelled sim, with ids that ignore the folder.
    """
    if ds.get("sim") is None or ds.get("root") is None:
        return None
    root = Path(ds["root"])
    if not root.exists() or (root / SIM_MARKER).is_file():
        return None  # generated now, or made by the runner (parameters checked when used)
    if root.is_dir() and not any(root.iterdir()):
        return None
    return (
        f"`dataset.root` {str(root)!r} is not a CXR14-sim folder made by mlbench (no "
        f"{SIM_MARKER}), but `dataset.sim` is set, so the runs would train on what it holds "
        "and label it sim. To use the real data in it, drop `sim`: --set dataset.sim=null; "
        "to generate CXR14-sim, set `dataset.root` to an empty or new folder (or one made "
        "with the same `dataset.sim`)"
    )


def data_problem(suite: Suite) -> str | None:
    """Why the suite's dataset cannot be used, or None. Cheap: no torch, no decoding.

    A ``sim`` dataset is generated by the run; its only problem can be a ``dataset.root``
    that holds something else (``sim_root_problem``).
    """
    ds = suite.dataset
    if ds["sim"] is not None:
        problem = sim_root_problem(ds)
        return f"error: {problem}" if problem else None
    root = Path(ds["root"])
    if not root.is_dir():
        what = f"the ChestX-ray14 folder {str(root)!r} (dataset.root) does not exist"
    elif not any((root / n).is_file() for n in LABEL_FILES):
        what = f"{str(root)!r} (dataset.root) has no label table ({' or '.join(LABEL_FILES)})"
    elif not all((root / n).is_file() for n in SPLIT_FILES.values()):
        what = f"{str(root)!r} (dataset.root) lacks the split lists {' and '.join(SPLIT_FILES.values())}"
    else:
        return None
    src = f" of {suite.source}" if suite.source else ""
    return (
        f"Cannot run suite {suite.name!r}{src}: {what}.\n\n"
        "The suite needs the NIH ChestX-ray14 release (112,120 PNGs, about 45 GB):\n"
        f"  1. download it from {NIH_URL}\n"
        "     (Data_Entry_2017_v2020.csv, train_val_list.txt, test_list.txt, images_001..012)\n"
        "  2. unpack everything into one folder, then point the suite at it:\n"
        "       export CXR14_ROOT=/path/to/ChestX-ray14\n"
        f"       python -m mlbench run {suite.source or 'SUITE'}\n"
        "     (or: --set dataset.root=/path/to/ChestX-ray14)\n\n"
        "No data at hand? The simulated suite (CXR14-sim, generated on the fly, ~10 min on CPU):\n"
        "       python -m mlbench run suites/quickstart.yaml\n"
    )
