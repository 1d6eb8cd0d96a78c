"""Turn a pytest-benchmark JSON file into tables.

    python -m benchmarks.table bench.json [more.json ...] [--format github]

**Losses** (``benchmarks/test_losses.py``): one table per shape (C, B, dtype), a row per loss
or composite, ranked by forward+backward time (the cost a training step pays): median time per
call forward and forward+backward, each × BCE (the ``bce`` cell of the same file), GB/s and
peak memory of forward+backward, and for a composite its forward+backward time over the sum of
its terms' (× terms: 1.0 means the weighted sum costs nothing beyond its terms). On CUDA also
the device time per call.

**MSML variants** (``benchmarks/test_msml.py``): one row per benchmark: median wall time per call, achieved GB/s, % of the device's peak
bandwidth, the same three for the device time per call (CUDA only: CUDA-graph replays, without
the host's Python/autograd/launch time), peak memory, and the speed-ups over ``torch.compile``
of the factorised form ("compiled") and over the eager factorised form ("factorised") of the
same cell (loss, C, B, mode), by wall time and by device time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from tabulate import tabulate

VARIANT_ORDER = ["naive", "factorised", "compiled", "triton"]
HEADERS = ["loss", "C", "B", "mode", "dtype", "variant", "time (ms)", "GB/s", "% peak",
           "device (ms)", "dev GB/s", "dev % peak", "peak mem (MiB)", "× compiled", "× eager",
           "× compiled (dev)", "× eager (dev)"]  # fmt: skip


def _speedup(median: dict[str, float], base: str, t: float) -> float | None:
    return median[base] / t if base in median else None


def _per_call(bench: dict) -> float:
    """Median seconds per call (a timed round may hold several calls, see test_msml)."""
    return bench["stats"]["median"] / bench.get("extra_info", {}).get("calls_per_round", 1)


def _rows(benchmarks: list[dict]) -> list[list]:
    cells: dict[tuple, dict[str, dict]] = {}
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        if "variant" not in info:
            continue
        key = (info["loss"], info["C"], info["B"], info["mode"], info.get("dtype"))
        cells.setdefault(key, {})[info["variant"]] = bench
    rows = []
    for key in sorted(cells):
        by_variant = cells[key]
        median = {v: _per_call(b) for v, b in by_variant.items()}
        dev = {
            v: b["extra_info"]["device_seconds_per_call"]
            for v, b in by_variant.items()
            if b["extra_info"].get("device_seconds_per_call")
        }
        order = sorted(
            by_variant, key=lambda v: VARIANT_ORDER.index(v) if v in VARIANT_ORDER else 99
        )
        for variant in order:
            info = by_variant[variant]["extra_info"]
            t, d = median[variant], dev.get(variant)
            rows.append([
                *key, variant, t * 1e3, info.get("gb_per_s"), info.get("pct_of_peak"),
                d * 1e3 if d else None, info.get("device_gb_per_s"), info.get("device_pct_of_peak"),
                info["peak_memory_bytes"] / 2**20 if info.get("peak_memory_bytes") is not None
                else None,
                _speedup(median, "compiled", t), _speedup(median, "factorised", t),
                _speedup(dev, "compiled", d) if d else None,
                _speedup(dev, "factorised", d) if d else None,
            ])  # fmt: skip
    return rows


LOSS_HEADERS = ["rank", "loss", "fwd (ms)", "fwd × BCE", "fwd+bwd (ms)", "fwd+bwd × BCE",
                "GB/s", "peak mem (MiB)", "× terms", "device fwd+bwd (ms)"]  # fmt: skip


def _loss_tables(runs: list[list[dict]], fmt: str) -> list[str]:
    """One table per shape (C, B, dtype) of the ``bench == "losses"`` cells, ranked by cost.

    With several runs (files) a cell's time is the median over the runs of its per-run median
    (bursts of load on a shared machine move whole runs; the median of runs drops them)."""
    shapes: dict[tuple, dict[str, dict[str, list[dict]]]] = {}
    for benchmarks in runs:
        for bench in benchmarks:
            info = bench.get("extra_info", {})
            if info.get("bench") != "losses":
                continue
            shape = (info["C"], info["B"], info.get("dtype"))
            modes = shapes.setdefault(shape, {}).setdefault(info["loss"], {})
            modes.setdefault(info["mode"], []).append(bench)
    tables = []
    for (C, B, dtype), by_loss in sorted(shapes.items()):
        time = {
            (loss, mode): statistics.median(_per_call(b) for b in benches)
            for loss, modes in by_loss.items() for mode, benches in modes.items()
        }  # fmt: skip
        cost = {
            n: (time.get((n, "fwd_bwd"), math.inf), time.get((n, "fwd"), math.inf)) for n in by_loss
        }
        rows = []
        for rank, loss in enumerate(sorted(by_loss, key=cost.__getitem__), start=1):
            fwd, both = time.get((loss, "fwd")), time.get((loss, "fwd_bwd"))
            info = by_loss[loss].get("fwd_bwd", by_loss[loss].get("fwd"))[-1]["extra_info"]
            terms = info.get("terms") or [loss]
            term_sum = (
                sum(time[(t, "fwd_bwd")] for t in terms)
                if len(terms) > 1 and all((t, "fwd_bwd") in time for t in terms)
                else None
            )
            mem = info.get("peak_memory_bytes")
            gbs = info["bytes"] / both / 1e9 if both and info.get("gb_per_s") else None
            dev = info.get("device_seconds_per_call") if both else None
            rows.append([
                rank, loss, _ms(fwd), _ratio(fwd, time.get(("bce", "fwd"))),
                _ms(both), _ratio(both, time.get(("bce", "fwd_bwd"))), gbs,
                mem / 2**20 if mem is not None else None, _ratio(both, term_sum), _ms(dev),
            ])  # fmt: skip
        table = tabulate(rows, headers=LOSS_HEADERS, tablefmt=fmt, floatfmt=".3g", missingval="-")
        runs_note = f", median of {len(runs)} runs" if len(runs) > 1 else ""
        tables.append(f"C={C}, B={B}, {dtype} (ranked by fwd+bwd time{runs_note})\n\n{table}")
    return tables


def _ms(seconds: float | None) -> float | None:
    return seconds * 1e3 if seconds else None


def _ratio(t: float | None, base: float | None) -> float | None:
    return t / base if t and base else None


def render(paths: str | Path | list, fmt: str = "github") -> str:
    """The tables for the pytest-benchmark JSON file(s) at ``paths`` (several: repeated runs
    of the same benchmarks; the loss tables take the median over them, the MSML variants table
    shows the last file's cells)."""
    runs, machine = [], {}
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks", []), list):
            raise ValueError("expected an object with a 'benchmarks' list")
        runs.append(data.get("benchmarks", []))
        machine = data.get("machine_info", {})
    benchmarks = [bench for run in runs for bench in run]
    devices = sorted({b["extra_info"].get("device", "?") for b in benchmarks})
    title = (
        f"device: {', '.join(devices) or '?'}; cpu: {machine.get('cpu', {}).get('brand_raw', '?')}"
    )
    parts = [title, *_loss_tables(runs, fmt)]
    rows = _rows(benchmarks)
    if rows or len(parts) == 1:
        table = tabulate(rows, headers=HEADERS, tablefmt=fmt, floatfmt=".3g", missingval="-")
        parts.append(f"MSML variants\n\n{table}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", nargs="+", help="file(s) written by pytest --benchmark-json (repeated runs)"
    )
    parser.add_argument("--format", default="github", help="tabulate format (default: github)")
    args = parser.parse_args(argv)
    try:
        print(render(args.json, args.format))
    except FileNotFoundError as err:
        parser.error(
            f"no benchmark JSON at {err.filename} (write one with pytest --benchmark-json=...)"
        )
    except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        files = ", ".join(args.json)
        parser.error(f"{files} is not a pytest-benchmark JSON file ({err!r})")


if __name__ == "__main__":
    main()
