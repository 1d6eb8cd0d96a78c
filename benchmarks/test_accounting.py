"""The benchmarks' own accounting: which device gets which peak bandwidth, which cells get GB/s."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import benchmarks.conftest as conftest
from benchmarks.conftest import (
    H100_SXM_PEAK_BYTES_S,
    H200_PEAK_BYTES_S,
    Device,
    peak_bytes_s,
    record,
)


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", H100_SXM_PEAK_BYTES_S),  # SXM5
        ("NVIDIA H100 PCIe", None),  # 2.0 TB/s
        ("NVIDIA H100 NVL", None),  # 3.9 TB/s
        ("NVIDIA H200", H200_PEAK_BYTES_S),
        ("NVIDIA H200 NVL", H200_PEAK_BYTES_S),
        ("NVIDIA A100-SXM4-80GB", None),
    ],
)
def test_peak_bandwidth_of_known_cards_only(name, peak):
    assert peak_bytes_s(name) == peak


class _Benchmark:
    """pytest-benchmark's fixture as far as ``record`` reads and writes it."""

    def __init__(self, seconds):
        self.stats = SimpleNamespace(stats=SimpleNamespace(median=seconds))
        self.extra_info = {}


@pytest.mark.parametrize(("nbytes", "quoted"), [(20 * 2**20, False), (500 * 2**20, True)])
def test_gb_per_s_only_well_above_l2(monkeypatch, nbytes, quoted):
    """SPEC §2: data that fits the 50 MB L2 of an H100 gets no GB/s nor % of peak."""
    h100 = Device("cuda", "NVIDIA H100 80GB HBM3", H100_SXM_PEAK_BYTES_S, 80 * 2**30, 50 * 2**20)
    monkeypatch.setattr(conftest, "peak_memory", lambda device, fn: (0, "not measured"))
    bench = _Benchmark(seconds=1e-4)
    record(bench, h100, nbytes=nbytes, fn=lambda: None)
    assert (bench.extra_info["gb_per_s"] is not None) is quoted
    assert (bench.extra_info["pct_of_peak"] is not None) is quoted


def test_gb_per_s_uses_the_time_per_call(monkeypatch):
    """A round of 10 calls taking 1 ms is 0.1 ms per call: 10× the GB/s of one call per round."""
    h100 = Device("cuda", "NVIDIA H100 80GB HBM3", H100_SXM_PEAK_BYTES_S, 80 * 2**30, 50 * 2**20)
    monkeypatch.setattr(conftest, "peak_memory", lambda device, fn: (0, "not measured"))
    one, ten = _Benchmark(seconds=1e-3), _Benchmark(seconds=1e-3)
    record(one, h100, nbytes=2**30, fn=lambda: None)
    record(ten, h100, nbytes=2**30, fn=lambda: None, calls=10)
    assert ten.extra_info["seconds_per_call"] == pytest.approx(1e-4)
    assert ten.extra_info["gb_per_s"] == pytest.approx(10 * one.extra_info["gb_per_s"])


def test_table_divides_rounds_by_calls(tmp_path):
    from benchmarks.table import render

    bench = {
        "stats": {"median": 2e-3},
        "extra_info": {
            "loss": "msml", "C": 14, "B": 256, "mode": "fwd", "dtype": "bfloat16",
            "variant": "triton", "calls_per_round": 4, "peak_memory_bytes": 0,
        },
    }  # fmt: skip
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": [bench]}))
    row = [line for line in render(path).splitlines() if "triton" in line][0]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6] == "0.5"  # time (ms): 2 ms per round / 4 calls


def test_device_time_gets_its_own_gb_per_s_and_speed_ups(monkeypatch, tmp_path):
    """A cell with a host-bound wall time: the device time (CUDA graph replay) is recorded and
    shown beside it, with its own GB/s, % of peak and speed-ups."""
    from benchmarks.table import render

    h100 = Device("cuda", "NVIDIA H100 80GB HBM3", H100_SXM_PEAK_BYTES_S, 80 * 2**30, 50 * 2**20)
    monkeypatch.setattr(conftest, "peak_memory", lambda device, fn: (0, "not measured"))
    benches = []
    for variant, wall, dev in (("compiled", 1e-3, 8e-4), ("triton", 2e-4, 1e-4)):
        bench = _Benchmark(seconds=wall)
        record(bench, h100, nbytes=2**30, fn=lambda: None, device_seconds=dev, loss="msml",
               variant=variant, mode="fwd_bwd", B=65536, C=1000, dtype="bfloat16")  # fmt: skip
        benches.append({"stats": {"median": wall}, "extra_info": bench.extra_info})
    info = benches[1]["extra_info"]
    assert info["device_gb_per_s"] == pytest.approx(2**30 / 1e-4 / 1e9)
    assert info["device_pct_of_peak"] == pytest.approx(100 * 2**30 / 1e-4 / 3.35e12)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": benches}))
    row = [line for line in render(path).splitlines() if "triton" in line][0]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6] == "0.2" and cells[9] == "0.1"  # wall and device ms
    assert cells[13] == "5" and cells[15] == "8"  # × compiled by wall time and by device time


def test_table_names_a_missing_or_foreign_file(tmp_path, capsys):
    from benchmarks.table import main

    with pytest.raises(SystemExit):
        main([str(tmp_path / "none.json")])
    assert "no benchmark JSON" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.json")])
    assert "not a pytest-benchmark JSON" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("tool", ["benchmarks.launches", "benchmarks.sweep", "benchmarks.host"])
def test_cuda_tools_say_no_cuda(tool, capsys):
    import importlib

    assert importlib.import_module(tool).main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_sweep_tries_grid_sizes_and_pipelined_loads():
    pytest.importorskip("triton")
    from benchmarks.sweep import candidates, grid_variants
    from losses._triton import msml as kmod

    shapes = candidates(kmod, 1000)
    assert shapes[0] == kmod._launch_config(1000) and len(set(shapes)) == len(shapes)
    variants = grid_variants(kmod, shapes[0])
    assert shapes[0] not in variants and len(set(variants)) == len(variants)
    assert {v.num_stages for v in variants} == {1, 2, 3}
    assert {v.warps_per_sm for v in variants if v.num_stages == 1} == {8, 12, 16, 24, 32, 64} - {
        shapes[0].warps_per_sm
    }
    # a shape of 8 warps per program is never put on a grid of fewer warps per SM
    wide = kmod.LaunchConfig(8, 1024, True, 8)
    assert all(v.warps_per_sm >= 8 for v in grid_variants(kmod, wide))
