"""A suite run with worker processes from the top level of a script without an
``if __name__ == "__main__":`` guard fails at once, before any data are prepared: no sim
generated, no cache built, no results.db (issue 24, item 6: never minutes of preparation
first), through the driver and through ``mlbench.run``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]

SCRIPTS = {
    "driver": """
        from mlbench.driver import run_suite
        from mlbench.suite import load_suite
        suite = load_suite({suite!r})
        print(run_suite(suite, suite.runs, workers=2, progress=False))
        """,
    "api": """
        import mlbench

        result = mlbench.run({suite!r}, workers=2, progress=False)
        print(result)
        """,
}


@pytest.mark.slow
@pytest.mark.parametrize("entry, data", [("driver", "cache"), ("api", "sim")])
def test_an_unguarded_script_fails_before_the_data_are_prepared(sim_root, tmp_path, entry,
                                                                 data):
    root = tmp_path / "sim"
    out = tmp_path / "out"
    if data == "cache":  # a dataset folder without its prepared cache: built first, before
        shutil.copytree(sim_root, root, ignore=shutil.ignore_patterns(".mlbench_cache"))
        suite = write_suite(tmp_path / "s.yaml", tiny_suite(root, out, workers=2))
    else:  # no dataset.root: CXR14-sim generated first, before
        suite = write_suite(tmp_path / "s.yaml", tiny_suite(None, out, workers=2))
    script = tmp_path / "quick.py"
    script.write_text(textwrap.dedent(SCRIPTS[entry].format(suite=suite)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert f"{script} runs the suite from its top level (line " in last, last
    assert "put the script's code under that guard" in last
    assert "prepare 16px" not in done.stderr  # no progress of a cache build
    assert not (root / ".mlbench_cache").exists()  # no cache built first
    assert not out.exists()  # no sim generated into OUT first, no results.db
