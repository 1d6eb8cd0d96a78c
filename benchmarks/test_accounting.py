"""The benchmarks' own accounting: which device gets which peak bandwidth."""

from __future__ import annotations

import pytest

from benchmarks.conftest import H100_SXM_PEAK_BYTES_S, peak_bytes_s


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
