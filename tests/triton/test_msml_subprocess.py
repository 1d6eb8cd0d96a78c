"""Runs test_msml_interpreter.py in a child pytest with TRITON_INTERPRET=1 (see conftest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_interpreter_suite_in_subprocess(interpreter_active):
    if interpreter_active:
        pytest.skip("TRITON_INTERPRET=1 here: test_msml_interpreter.py runs in this process")
    here = Path(__file__).resolve().parent
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(here / "test_msml_interpreter.py"),
         "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:benchmark"],
        cwd=here.parents[1], env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = proc.stdout[-8000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, output
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) > 0, output
