"""The loss specs the throughput benchmarks run: every registered loss and every composite
that a shipped suite trains (``suites/*.yaml``, e.g. ``bce+0.1*msml``), read from the registry
and the suite files so that a new loss (or suite composite) is benchmarked without a line of
benchmark code.

    python -m benchmarks.specs          # prints them, one per line
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import losses

SUITES = Path(__file__).resolve().parent.parent / "suites"


def suite_composites(suites: Path = SUITES) -> list[str]:
    """The weighted-sum specs (strings such as ``"bce+0.1*msml"``) of the suites' loss grids, in
    first-seen order. Mapping and list specs (per-term kwargs) are left out: their cost is
    that of their terms."""
    found: list[str] = []
    for path in sorted(suites.glob("*.yaml")):
        grid = (yaml.safe_load(path.read_text()) or {}).get("grid") or {}
        specs: Any = grid.get("loss") or []
        for spec in specs if isinstance(specs, list) else [specs]:
            if "{" in str(spec):  # a tuned weight ('bce+{alpha}*msml'): not a spec yet
                continue
            if isinstance(spec, str) and spec not in losses.list_losses() and spec not in found:
                found.append(spec)
    return found


def loss_specs() -> list[str]:
    """Every registered loss name, then the suites' composites."""
    return losses.list_losses() + suite_composites()


def term_names(spec: str) -> list[str]:
    """The registered names of a spec's terms (one for a plain name)."""
    # statistics only to build the losses that need them (cb, db, the per-class AUC losses)
    loss = losses.create_loss(spec, stats={"class_counts": [1], "num_samples": 2})
    return list(loss.names) if isinstance(loss, losses.WeightedSumLoss) else [spec]


if __name__ == "__main__":
    print("\n".join(loss_specs()))
