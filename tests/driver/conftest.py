"""What the driver's reliability tests compare with."""

from __future__ import annotations

import pytest

from mlbench.cli import main
from tests.helpers import stored_results, tiny_suite, write_suite


@pytest.fixture(scope="session")
def reference(tmp_path_factory, sim_root) -> dict:
    """What the tiny suite stores when nothing interrupts it: every resumed, raced or waited-for
    run must store the same (``stored_results``)."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_suite(folder / "suite.yaml", tiny_suite(sim_root, folder / "out"))
    assert main(["run", path, "--no-progress"]) == 0
    return stored_results(folder / "out")
