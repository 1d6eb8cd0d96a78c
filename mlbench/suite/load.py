"""Suite loading: YAML -> interpolation -> ``--set`` -> validation -> one ``Run`` per cell.

Also the run filters (``--only``) and the ``--dry-run`` table. Torch-free unless the
``train`` schema is taken from the engine (``train_schema``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlbench.suite.contrasts import check_analysis
from mlbench.suite.grid import Run, expand
from mlbench.suite.schema import (
    GRID_AXES,
    SIM,
    TOP,
    Key,
    SuiteError,
    apply_overrides,
    check_section,
    interpolate,
    normalise_augment,
    train_schema,
    yaml_problem,
)
from mlbench.suite.tuning import Plan, plan_suite


@dataclass
class Suite:
    """A loaded, validated suite."""

    name: str
    config: dict
    runs: list[Run]
    source: str | None = None
    plan: Any = None  # mlbench.suite.tuning.Plan when the suite has `tune` values, else None

    @property
    def output(self) -> Path:
        return Path(self.config["output"])

    @property
    def dataset(self) -> dict:
        return self.config["dataset"]


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
        raw = _read_yaml(Path(source))
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
    cfg = check_section(raw, schema, "")
    if cfg["output"] is None:
        cfg["output"] = str(Path("runs") / cfg["name"])
    _check_dataset(cfg)
    check_analysis(cfg)
    if isinstance(cfg["train"], dict) and "augment" in cfg["train"]:
        cfg["train"]["augment"] = normalise_augment(cfg["train"]["augment"])
    plan = plan_suite(cfg, schema["train"] if isinstance(schema["train"], dict) else None)
    runs = plan.stage_one() if plan is not None else expand(cfg)
    return Suite(name=cfg["name"], config=cfg, runs=runs, source=path, plan=plan)


def _read_yaml(path: Path) -> Any:
    """The parsed suite file; every way it cannot be read is one ``SuiteError`` line."""
    if path.is_dir():
        raise SuiteError(f"{path} is a folder, not a suite file; give a YAML file such as "
                         "suites/quickstart.yaml")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SuiteError(f"suite file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path} is not a text (UTF-8) file (byte {exc.start} is "
                         f"{exc.object[exc.start:exc.start + 1]!r}); a suite is a YAML file "
                         "such as suites/quickstart.yaml") from None
    except OSError as exc:
        raise SuiteError(f"cannot read the suite file {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None


def _check_dataset(cfg: dict) -> None:
    ds = cfg["dataset"]
    if ds["sim"] is not None:
        ds["sim"] = check_section(ds["sim"], SIM, "dataset.sim")
        if ds["root"] is None:
            ds["root"] = str(Path(cfg["output"]) / "cxr14-sim")
    elif ds["root"] is None:
        raise SuiteError("`dataset` needs `root` (a ChestX-ray14 folder) or `sim` (generate CXR14-sim)")
    if not 0 <= ds["val_fraction"] < 1:
        raise SuiteError(f"`dataset.val_fraction` must be in [0, 1), got {ds['val_fraction']}")



# ---------------------------------------------------------------- filters, dry run
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


def filter_runs(runs: list[Run], only: dict[str, list[str]] | None,
                strict: bool = True) -> list[Run]:
    """Keep runs whose backbone/head/loss/seed match every ``--only`` key.

    ``strict``: a value that matches no run is an error; ``False`` (a tuned suite's stage,
    which may hold none of them) keeps the matching runs only.
    """
    for key, wanted in (only or {}).items():
        if strict:
            have = {str(getattr(r, key)) for r in runs}
            missing = [w for w in wanted if w not in have]
            if missing:
                raise SuiteError(f"--only {key}={missing[0]} matches no run; {key} values: "
                                 f"{sorted(have)}")
        if strict or key in GRID_AXES:
            runs = [r for r in runs if str(getattr(r, key)) in wanted]
    return runs


def filter_plan(plan: Plan, only: dict | None) -> list[Run]:
    """Stage-one runs of a tuned suite matching ``--only`` (its values are checked against
    every run of the plan, both stages)."""
    if only:
        filter_runs(plan.every_run(), only)  # raises when a value matches no run at all
    return filter_runs(plan.stage_one(), only, strict=False)



def describe_runs(runs: list[Run], status: dict | None = None) -> str:
    """Table of runs (``--dry-run``); ``status`` maps run id -> stored status."""
    from tabulate import tabulate

    status = status or {}
    rows = [(r.id, r.backbone, r.head, r.loss, r.seed, status.get(r.id, "new")) for r in runs]
    return tabulate(rows, headers=["id", "backbone", "head", "loss", "seed", "status"])

