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

from mlbench.layout import SIM_KNOBS, sim_knobs
from mlbench.suite.contrasts import check_analysis
from mlbench.suite.grid import CellSeeds, Run, cell_seeds, expand
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
    normalise_test_sets,
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

    @property
    def seeds(self) -> CellSeeds:
        """Every cell's seeds (``seeds``, or ``seeds.default`` with ``seeds.cells``)."""
        return cell_seeds(self.config)


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
    cfg["eval"]["test_sets"] = normalise_test_sets(cfg["eval"]["test_sets"])
    if isinstance(cfg["train"], dict) and "augment" in cfg["train"]:
        cfg["train"]["augment"] = normalise_augment(cfg["train"]["augment"])
    plan = plan_suite(cfg, schema["train"] if isinstance(schema["train"], dict) else None)
    runs = plan.stage_one() if plan is not None else expand(cfg)
    return Suite(name=cfg["name"], config=cfg, runs=runs, source=path, plan=plan)


MAX_SUITE_BYTES = 1 << 20  # a suite file is a few KB; more is not a suite
MAX_YAML_NODES = 100_000  # nodes once aliases are expanded (an alias bomb stops here)
MAX_YAML_DEPTH = 100  # nested lists and mappings


def _read_yaml(path: Path) -> Any:
    """The parsed suite file; every way it cannot be read is one ``SuiteError`` line."""
    if path.is_dir():
        raise SuiteError(f"{path} is a folder, not a suite file; give a YAML file such as "
                         "suites/quickstart.yaml")
    try:
        with open(path, "rb") as fh:
            import os
            import stat

            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise SuiteError(f"{path} is not a regular file (a device or a pipe); give a "
                                 "YAML file such as suites/quickstart.yaml")
            raw = fh.read(MAX_SUITE_BYTES + 1)
        if len(raw) > MAX_SUITE_BYTES:
            raise SuiteError(f"{path} is larger than the limit for a suite file "
                             f"({MAX_SUITE_BYTES} bytes); a suite is a short YAML file")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SuiteError(f"suite file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path} is not a text (UTF-8) file (byte {exc.start} is "
                         f"{exc.object[exc.start:exc.start + 1]!r}); a suite is a YAML file "
                         "such as suites/quickstart.yaml") from None
    except OSError as exc:
        raise SuiteError(f"cannot read the suite file {path}: {exc.strerror or exc}") from None
    try:
        _check_bounds(text, path)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None


def _check_bounds(text: str, path: Path) -> None:
    """Refuse YAML whose expanded tree is too big or too deep, from its events (no tree is
    built, no recursion): aliases count as the nodes they repeat."""
    total, stack, anchors = 0, [], {}  # stack: (anchor, total at start, depth below)

    def add(n: int, depth: int) -> None:
        nonlocal total
        total += n
        if total > MAX_YAML_NODES:
            raise SuiteError(f"{path}: more than {MAX_YAML_NODES} YAML nodes once its aliases "
                             "are expanded (the limit); a suite is a short file (an alias "
                             "bomb?)")
        if len(stack) + depth > MAX_YAML_DEPTH:
            raise SuiteError(f"{path}: YAML nested deeper than {MAX_YAML_DEPTH} levels (the "
                             "limit); a suite is a few levels deep")

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise SuiteError(f"{path}: the alias *{event.anchor} refers to a node that "
                                 "contains it (or to no anchor); a suite has no cycles")
            size, depth = anchors[event.anchor]
            add(size, depth)
        elif isinstance(event, yaml.ScalarEvent):
            add(1, 0)
            if event.anchor:
                anchors[event.anchor] = (1, 0)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            add(1, 1)
            stack.append([event.anchor, total - 1, 1])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, start, depth = stack.pop()
            if anchor:
                anchors[anchor] = (total - start, depth)
            if stack:
                stack[-1][2] = max(stack[-1][2], depth + 1)


def _check_dataset(cfg: dict) -> None:
    ds = cfg["dataset"]
    if ds["sim"] is not None:
        sim = check_section(ds["sim"], SIM, "dataset.sim")
        knobs = sim_knobs(**{k: sim.pop(k) for k in SIM_KNOBS})  # at their defaults: absent
        ds["sim"] = {**sim, **knobs}
        if ds["root"] is None:
            ds["root"] = str(Path(cfg["output"]) / "cxr14-sim")
    elif ds["root"] is None:
        raise SuiteError("`dataset` needs `root` (a ChestX-ray14 folder) or `sim` (generate CXR14-sim)")
    if not 0 <= ds["val_fraction"] < 1:
        raise SuiteError(f"`dataset.val_fraction` must be in [0, 1), got {ds['val_fraction']}")



# ---------------------------------------------------------------- filters, dry run
def parse_only(items: list[str] | None) -> dict[str, list[str]]:
    """``["loss=msml,bce", "head=linear"]`` -> ``{"loss": ["msml", "bce"], "head": ["linear"]}``.

    Tokens are separated by commas outside parentheses and brackets (a mapping loss's label
    ``asl(gamma_neg=2,gamma_pos=0)``, a recipe's ``bce:2>aucm[lr=0.1,schedule=step]`` is one
    value); a token without ``key=`` adds a value to the last key.
    """
    out: dict[str, list[str]] = {}
    key = None
    for item in items or []:
        for token in re.split(r",(?![^(\[]*[)\]])", item):
            token = token.strip()
            if not token:
                continue
            if "=" in token and not set("([") & set(token.split("=", 1)[0]):
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

