"""Run identity: the canonical JSON of a resolved run config and the run id made from it.

The results database keys runs by this id and the leaderboard groups runs by it, so it
changes only when what a run computes changes. Torch-free and YAML-free.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from mlbench.layout import dataset_fingerprint

# A renamed loss (``losses.register_loss(..., aliases=...)``) enters a run id under the name it
# had when its runs were first made, so renaming it changes no id: new name -> old name.
RENAMED_LOSSES = {"softmax": "sce"}
_RENAMED = re.compile(r"(?<![\w.])(" + "|".join(RENAMED_LOSSES) + r")(?![\w.])")


def identity_loss(spec: Any) -> Any:
    """A loss spec as it enters the run id: renamed losses under their old names."""
    if isinstance(spec, str):
        return _RENAMED.sub(lambda m: RENAMED_LOSSES[m.group(1)], spec)
    if isinstance(spec, dict):
        name = spec.get("name")
        return {**spec, "name": RENAMED_LOSSES.get(name, name)} if "name" in spec else spec
    if isinstance(spec, list):
        return [identity_loss(term) for term in spec]
    return spec


def canonical_json(obj: Any) -> str:
    """The canonical text of a config: JSON, sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id(config: dict) -> str:
    """Stable id of a resolved run config: 12 hex digits of SHA-256 of its canonical JSON.

    Where the dataset is generated (``sim``), its parameters identify the data and the
    folder it lands in does not enter the id; a dataset given by its folder enters through
    the fingerprint of what defines it (``mlbench.layout.dataset_fingerprint``: label table,
    split lists, images present), not its path, so moving the data keeps every id (a folder
    without a label table, absent say, enters by its path). Nor does where the prepared
    cache is kept (``dataset.cache_dir``). A tuned run's ``tune`` entry (its grid label and
    tried values, ``mlbench.suite.tuning``) does not either: a setting is identified by its
    resolved config.
    """
    ident = _identity(config)
    ds = ident.get("dataset", {})
    if not ds.get("sim") and ds.get("root") is not None:
        fingerprint = dataset_fingerprint(ds["root"])
        if fingerprint is not None:
            ds["root"] = {"data": fingerprint}
    return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:12]


def path_run_id(config: dict) -> str:
    """The id a run had before issue 24, with a real dataset's path in it: what results
    folders made then store (``mlbench.driver`` matches their runs under it)."""
    return hashlib.sha256(canonical_json(_identity(config)).encode()).hexdigest()[:12]


def _identity(config: dict) -> dict:
    ident = copy.deepcopy(config)
    ident.get("dataset", {}).pop("cache_dir", None)
    if ident.get("dataset", {}).get("sim"):
        ident["dataset"].pop("root", None)
    ident.pop("suite", None)
    ident.pop("tune", None)  # a tuned run's grid label and values: what it computes is above
    if "loss" in ident:
        ident["loss"] = identity_loss(ident["loss"])
    return ident

