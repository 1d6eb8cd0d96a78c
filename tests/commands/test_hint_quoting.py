"""The commands `run` prints for the user to copy are shell-quoted: an output folder with a
space in its name gives hints that run as printed (issue 24, partial cases)."""

from __future__ import annotations

import shlex

import pytest

from tests.helpers import cli, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


def test_hints_for_a_folder_with_a_space_are_quoted(sim_root, tmp_path, capsys):
    out = tmp_path / "my runs" / "out"
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(sim_root, out))
    code, stdout, err = cli(capsys, "run", suite, "--no-progress")
    assert code == 0, err
    [hint] = [line for line in stdout.splitlines() if line.startswith("Per-class AUCs:")]
    first = hint.removeprefix("Per-class AUCs: ").split("   Plots: ")
    assert [shlex.split(c) for c in first] == [
        ["python", "-m", "mlbench", "leaderboard", str(out)],
        ["python", "-m", "mlbench", "report", str(out)]]
