"""CLI conventions: --version, --log-level everywhere, exit codes in --help, dry-run JSON,
KEY=VALUE overrides beside --set, a dead worker exits 3."""

from __future__ import annotations

import json

import pytest

from mlbench.cli import build_parser, main
from tests.helpers import tiny_suite
from tests.helpers import write_suite as write

pytestmark = pytest.mark.observability


def write_suite(tmp_path) -> str:
    """The 2-run tiny suite (named "obs") into tmp_path/suite.yaml."""
    return write(tmp_path / "suite.yaml", tiny_suite(None, tmp_path / "out", name="obs"))


def test_version(capsys):
    from mlbench import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mlbench {__version__}"


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for line in ("0    done", "1    run: some runs failed", "2    bad input",
                 "3    run: a worker or executor died", "130  interrupted"):
        assert line in text, line


def _commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from _commands(child, (*prefix, name))


def test_every_command_takes_log_level():
    parser = build_parser()
    names = []
    for name, child in _commands(parser):
        names.append(" ".join(name))
        assert any("--log-level" in a.option_strings for a in child._actions), name
    assert {"run", "status", "export", "leaderboard", "data sim"} <= set(names)
    args = parser.parse_args(["status", "x", "--log-level", "debug"])
    assert args.log_level == "DEBUG"
    args = parser.parse_args(["--log-level", "ERROR", "status", "x"])
    assert args.log_level == "ERROR"


def test_dry_run_json_and_key_value_overrides(tmp_path, capsys):
    path = write_suite(tmp_path)
    assert main(["run", str(path), "--dry-run", "--format", "json", "train.epochs=5",
                 "--only", "loss=bce", "seeds=[0,1]", "--set", "train.lr=0.01"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["suite"] == "obs" and [r["loss"] for r in got["runs"]] == ["bce", "bce"]
    assert [r["seed"] for r in got["runs"]] == [0, 1]
    assert {r["status"] for r in got["runs"]} == {"new"}
    for r in got["runs"]:
        assert r["config"]["train"]["epochs"] == 5 and r["config"]["train"]["lr"] == 0.01
    # the same overrides through --set give the same run ids
    assert main(["run", str(path), "--dry-run", "--format", "json", "--set", "train.epochs=5",
                 "--only", "loss=bce", "--set", "seeds=[0,1]", "--set", "train.lr=0.01"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in again["runs"]] == [r["id"] for r in got["runs"]]


def test_bad_override_is_exit_2(tmp_path, capsys):
    path = write_suite(tmp_path)
    assert main(["run", str(path), "--dry-run", "train.nope=1"]) == 2
    assert "train.nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # not KEY=VALUE: argparse's usage error
        main(["run", str(path), "--dry-run", "oops"])
    assert exc.value.code == 2


def test_tracking_flags_become_the_suite_section(tmp_path, monkeypatch):
    from mlbench import driver

    seen = {}

    def fake_run_suite(suite, runs, **kwargs):
        seen.update(suite.config["tracking"])
        raise driver.WorkerDied("worker 0 (pid 1) died with exit code -9")

    monkeypatch.setattr(driver, "run_suite", fake_run_suite)
    monkeypatch.setattr("mlbench.driver.prepare.prepare_data", lambda *a, **k: None)
    path = write_suite(tmp_path)
    code = main(["run", str(path), "--mlflow-uri", "sqlite:///x.db", "--tensorboard",
                 "--no-progress"])
    assert code == 3  # a dead worker is not a bad suite (2) nor failed runs (1)
    assert seen["mlflow"] is True and seen["mlflow_uri"] == "sqlite:///x.db"
    assert seen["tensorboard"] is True and seen["artifacts"] is True
