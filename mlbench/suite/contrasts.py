"""A suite's primary contrasts (``analysis.primary``): ``"A vs B"``, optionally
``"A vs B @ backbone"`` or ``"A vs B @ backbone/head"`` to confine it to one setup.

A and B are grid.loss labels (as the leaderboard names its rows: the spec without spaces; a
tuned entry such as ``bce+{alpha}*msml`` is its own label); B may be ``chance`` (mean AUC
0.5: Δ is A's mean AUC - 0.5, with the CI of its mean, the same two variance components).
Checked at load, naming the key. Not part of any run id: the same runs answer any choice of
primary contrasts.

``analysis.expect`` (controls, issue 25): contrast -> the verdict it must get (or a list of
acceptable ones), e.g. ``{"msml vs bce": worse, "bce+0.1*msml vs bce": equivalent,
"bce(labels=shuffled) vs chance": equivalent}``. Every key is a primary contrast; the
leaderboard prints each one's expected and observed verdict.
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
CHANCE = "chance"  # B of "A vs chance": mean AUC 0.5
# what analysis.expect may ask for: the verdicts of mlbench.stats.verdicts but "no test"
EXPECTABLE = ("better", "worse", "equivalent", "non-inferior", "inconclusive")


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
    if a == CHANCE:
        raise SuiteError(f"`{where}`: write the loss first, '{b} vs {CHANCE}'")
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
            if side not in labels and not (side == c.b == CHANCE):
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
    expectations(section, seen)


def expectations(section: dict | None, labels=None) -> dict:
    """``analysis.expect`` as {contrast label: (acceptable verdicts, ...)}; with ``labels``
    (the primary contrasts' labels) each key must be one of them. Raises :class:`SuiteError`
    naming the key."""
    raw = (section or {}).get("expect") or {}
    if not isinstance(raw, dict):
        raise SuiteError("`analysis.expect` maps a primary contrast ('A vs B') to its expected "
                         f"verdict, got {raw!r}")
    if labels is None:
        labels = {c.label for c in parse_contrasts((section or {}).get("primary") or [])}
    out = {}
    for key, want in raw.items():
        where = f"analysis.expect.{key}"
        label = parse_contrast(key, where).label
        if label not in labels:
            raise SuiteError(f"`{where}`: {label!r} is not a contrast of analysis.primary "
                             f"{sorted(labels)}; an expectation is about a primary contrast")
        verdicts = as_list(want)
        bad = [v for v in verdicts if v not in EXPECTABLE]
        if bad or not verdicts:
            raise SuiteError(f"`{where}`: expected verdicts are among {list(EXPECTABLE)}, got "
                             f"{want!r}")
        if ("equivalent" in verdicts or "non-inferior" in verdicts) and \
                (section or {}).get("margin") is None:
            raise SuiteError(f"`{where}`: {want!r} needs `analysis.margin` (equivalence and "
                             "non-inferiority are within a margin)")
        out[label] = tuple(verdicts)
    return out
