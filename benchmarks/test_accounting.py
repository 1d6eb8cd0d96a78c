"""The benchmarks' own accounting: which device gets which peak bandwidth, which cells get GB/s."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import benchmarks.conftest as conftest
from benchmarks.conftest import H100_SXM_PEAK_BYTES_S, Device, peak_bytes_s, record


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", H100_SXM_PEAK_BYTES_S),  # SXM5
        ("NVIDIA H100 PCIe", None),  # 2.0 TB/s
        ("NVIDIA H100 NVL", None),  # 3.9 TB/s
        ("NVIDIA H200", None),
        ("NVIDIA A100-SXM4-80GB", None),
    ],
)
def test_peak_bandwidth_only_for_the_h100_sxm(name, peak):
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
