"""A suite's primary contrasts (``analysis.primary``): ``"A vs B"``, optionally
``"A vs B @ backbone"`` or ``"A vs B @ backbone/head"`` to confine it to one setup.

A and B are grid.loss labels (as the leaderboard names its rows: the spec without spaces; a
tuned entry such as ``bce+{alpha}*msml`` is its own label). Checked at load, naming the key.
Not part of any run id: the same runs answer any choice of primary contrasts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlbench.suite.schema import SuiteError, as_list


@dataclass(frozen=True)
class Contrast:
    """``a`` vs ``b`` (Δ = a − b), in the setups matching ``backbone`` / ``head`` (None: any)."""

    a: str
    b: str
    backbone: str | None = None
    head: str | None = None

    @property
    def label(self) -> str:
        where = "/".join(x for x in (self.backbone, self.head) if x)
        return f"{self.a} vs {self.b}" + (f" @ {where}" if where else "")

    def applies(self, backbone: str, head: str) -> bool:
        return self.backbone in (None, backbone) and self.head in (None, head)


_VS = re.compile(r"\s+vs\.?\s+")


def parse_contrast(text: str, where: str = "analysis.primary") -> Contrast:
    """``"bce+0.1*msml vs bce @ densenet121/linear"`` -> :class:`Contrast`."""
    if not isinstance(text, str):
        raise SuiteError(f"`{where}` must be a string 'A vs B', got {text!r}")
    body, _, at = text.partition("@")
    parts = _VS.split(body.strip())
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise SuiteError(f"`{where}`: expected 'A vs B' (two grid.loss labels), got {text!r}")
    a, b = (re.sub(r"\s+", "", p) for p in parts)
    if a == b:
        raise SuiteError(f"`{where}`: a loss against itself ({a!r})")
    backbone = head = None
    if at.strip():
        bits = [x.strip() for x in at.strip().split("/")]
        if len(bits) > 2 or not all(bits):
            raise SuiteError(f"`{where}`: expected '@ backbone' or '@ backbone/head' after the "
                             f"contrast, got {text!r}")
        backbone = bits[0]
        head = bits[1] if len(bits) == 2 else None
    return Contrast(a, b, backbone, head)


def parse_contrasts(values) -> list[Contrast]:
    """Every entry of ``analysis.primary`` (a list, or one string)."""
    return [parse_contrast(v, f"analysis.primary[{i}]") for i, v in enumerate(as_list(values))
            if v not in (None, "")]


def check_analysis(cfg: dict) -> None:
    """``analysis.primary`` names grid.loss labels (and the grid's backbones / heads);
    ``analysis.margin`` is a margin in mean AUC. Raises :class:`SuiteError` naming the key."""
    from mlbench.suite.grid import loss_label, normalise_loss

    section = cfg.get("analysis") or {}
    labels = [re.sub(r"\s+", "", loss_label(normalise_loss(spec, f"grid.loss[{i}]")))
              for i, spec in enumerate(as_list(cfg["grid"]["loss"]))]
    backbones = [str(x) for x in as_list(cfg["grid"]["backbone"])]
    heads = [str(x) for x in as_list(cfg["grid"]["head"])]
    seen = set()
    for i, c in enumerate(parse_contrasts(section.get("primary", []))):
        where = f"analysis.primary[{i}]"
        for side in (c.a, c.b):
            if side not in labels:
                raise SuiteError(f"`{where}` ({c.label}): {side!r} is not a grid.loss label; "
                                 f"labels: {labels}")
        if c.backbone is not None and c.backbone not in backbones:
            raise SuiteError(f"`{where}` ({c.label}): backbone {c.backbone!r} is not in "
                             f"grid.backbone {backbones}")
        if c.head is not None and c.head not in heads:
            raise SuiteError(f"`{where}` ({c.label}): head {c.head!r} is not in grid.head {heads}")
        if c.label in seen:
            raise SuiteError(f"`{where}`: {c.label!r} is listed twice")
        seen.add(c.label)
    margin = section.get("margin")
    if margin is not None and not 0 < margin < 0.5:
        raise SuiteError(f"`analysis.margin` is a margin in mean AUC, in (0, 0.5), got {margin!r}")
