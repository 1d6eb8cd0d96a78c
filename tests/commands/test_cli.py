"""The command line: dry runs, fast failure without data, errors naming keys, outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import losses
from mlbench.cli import main
from mlbench.db import ResultsDB
from tests.helpers import (
    EIGHT_RUNS,
    REPO,
    read_only_prefix,
    run_cli,
    tiny_suite,
    write_suite,
)


def write(tmp_path, suite: dict) -> str:
    return write_suite(tmp_path / "suite.yaml", suite)


def eight_runs(tmp_path, **changes) -> dict:
    """The 8-run tiny suite (sim generated into tmp_path/out/cxr14-sim)."""
    return tiny_suite(None, tmp_path / "out", EIGHT_RUNS, **changes)


def test_dry_run_lists_runs_and_filters(tmp_path, capsys):
    path = write(tmp_path, eight_runs(tmp_path))
    assert main(["run", path, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and out.count("resnet10t") == 8 and "new" in out
    assert main(["run", path, "--dry-run", "--only", "loss=bce,head=linear", "--set", "seeds=[3]"]) == 0
    out = capsys.readouterr().out
    assert "1 runs" in out and " 3 " in out and "bilinear" not in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


# ``--help`` of every command, mounted or nested, in a fresh interpreter: after each one,
# which of the heavy packages are loaded (the first command that loads one is named).
HELP_PROBE = """
import argparse, contextlib, io, json, sys
from mlbench.cli import build_parser, main

def commands(parser, prefix=()):
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += commands(child, prefix + (name,))
    return out

seen = {}
for words in commands(build_parser()):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*words, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, words
    seen[" ".join(words) or "mlbench"] = [m for m in ("torch", "timm", "torchvision")
                                          if m in sys.modules]
print(json.dumps(seen))
"""


def test_help_of_every_command_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"mlbench", "run", "leaderboard", "losses", "data", "data sim"} <= set(seen)
    assert {cmd: heavy for cmd, heavy in seen.items() if heavy} == {}


def test_bad_suite_exit_code_and_message(tmp_path, capsys):
    path = write(tmp_path, eight_runs(tmp_path))
    assert main(["run", path, "--set", "train.lrr=1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown key `train.lrr`" in err and "'lr'" in err
    assert main(["run", path, "--set", "grid.loss=[bce, nope]", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "`grid.loss[1]`" in err and "msml" in err


def test_real_suite_without_data_fails_fast(tmp_path):
    # "Fast" is checked structurally, not with a clock (no timing assertions in tests): the
    # missing root is reported before torch or any dataset/model code is imported.
    env = {**os.environ, "CXR14_ROOT": str(tmp_path / "no-such-dir")}
    probe = (
        "import sys\n"
        "from mlbench.cli import main\n"
        "rc = main(['run', 'suites/chestxray14.yaml'])\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'mlbench.data', 'mlbench.driver.worker') "
        "if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "HEAVY=\n" in proc.stdout, proc.stdout
    for needle in ("no-such-dir", "CXR14_ROOT", "nihcc.app.box.com", "suites/quickstart.yaml"):
        assert needle in proc.stderr, needle




def test_losses_command_lists_registry(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    for name in losses.list_losses():
        assert f"\n{name} " in out
        ref = losses.get_loss_info(name).reference
        assert ref.split(",")[0] in out
    assert "\nsoftmax (was sce) " in out  # a renamed loss shows the name its old suites use


def test_leaderboard_and_report_commands(filled, tmp_path, capsys):
    out, _ = filled
    dest = tmp_path / "lb.csv"
    assert main(["leaderboard", str(out), "--format", "csv", "--out", str(dest)]) == 0
    assert dest.read_text().startswith("backbone,head,loss,seeds")
    assert main(["leaderboard", str(out), "--format", "md", "--reference", "msml"]) == 0
    assert "Δ vs msml" in capsys.readouterr().out
    # a mistyped reference: an empty Δ column is explained, not silent
    assert main(["leaderboard", str(out), "--reference", "bcee"]) == 0
    text = capsys.readouterr().out
    assert "no finished run of the reference loss 'bcee'" in text and "'msml'" in text
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    # into a folder that does not exist yet: made, as `--out` of `run` is
    assert main(["leaderboard", str(out), "--format", "md", "--out", str(tmp_path / "new" / "lb.md")]) == 0
    assert (tmp_path / "new" / "lb.md").read_text().startswith("### ")
    assert main(["report", str(out), "-o", str(tmp_path / "new2" / "r.html")]) == 0
    assert (tmp_path / "new2" / "r.html").is_file()
    assert main(["leaderboard", str(tmp_path / "empty")]) == 2
    assert "run a suite first" in capsys.readouterr().err


def test_dataset_with_missing_images_is_an_error_not_a_traceback(tmp_path, capsys):
    root = tmp_path / "cxr"
    root.mkdir()
    (root / "Data_Entry_2017_v2020.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
        "00000001_000.png,Effusion,0,1,58,M,PA,1024,1024,0.14,0.14\n"
        "00000002_000.png,No Finding,0,2,40,F,PA,1024,1024,0.14,0.14\n")
    (root / "train_val_list.txt").write_text("00000001_000.png\n")
    (root / "test_list.txt").write_text("00000002_000.png\n")
    suite = eight_runs(tmp_path, dataset={"root": str(root), "sim": None, "val_fraction": 0.1})
    assert main(["run", write(tmp_path, suite), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "00000001_000.png" in err


def test_failed_runs_are_named_with_their_error(tmp_path, capsys, monkeypatch):
    # before: only "0 finished, 2 failed" -- the reason was in results.db alone
    monkeypatch.setenv("MLBENCH_FAULT", "start:raise:boom in {loss}\nsecond line")
    suite = eight_runs(tmp_path, seeds=[0])
    suite["grid"] = {"backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce", "msml"]}
    assert main(["run", write(tmp_path, suite), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom in bce" in err and "RuntimeError: boom in msml" in err
    assert "second line" not in err and "--retry-failed" in err


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_reading_commands_write_nothing_to_the_results(filled, tmp_path, capsys):
    # leaderboard/report opened results.db for writing: WAL mode, schema, -wal/-shm files
    import sqlite3

    out, _ = filled
    conn = sqlite3.connect(out / "results.db")
    conn.execute("PRAGMA journal_mode = DELETE")  # as a copied / archived database may be
    conn.close()
    before = _snapshot(out)
    assert main(["leaderboard", str(out)]) == 0
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    assert _snapshot(out) == before
    with ResultsDB(out / "results.db", readonly=True) as db, pytest.raises(
            sqlite3.OperationalError, match="readonly"):
        db.set_meta("x", 1)


def test_leaderboard_and_report_on_a_read_only_folder(filled, tmp_path, request):
    out, _ = filled
    prefix = read_only_prefix(out)
    if prefix == []:  # chmod'ed: give pytest its folder back afterwards
        request.addfinalizer(lambda: [p.chmod(0o755) for p in [out, *out.rglob("*")]])

    def cli(*args):
        return run_cli(*args, prefix=prefix)

    lb = cli("leaderboard", str(out), "--no-per-class")
    assert lb.returncode == 0, lb.stderr
    assert "bce+0.1*msml" in lb.stdout
    rep = cli("report", str(out), "-o", str(tmp_path / "r.html"))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    # the default OUT/report.html cannot be written there: one line, not a traceback
    rep = cli("report", str(out))
    assert rep.returncode == 2
    assert re.fullmatch(f"error: cannot write {re.escape(str(out / 'report.html'))}: "
                        "(Read-only file system|Permission denied); choose another file with "
                        "-o FILE", rep.stderr.strip())


def test_missing_or_foreign_results_db_is_one_line_naming_it(tmp_path, capsys):
    for cmd in ("leaderboard", "report"):
        assert main([cmd, str(tmp_path / "nothing")]) == 2
        err = capsys.readouterr().err
        assert err.strip() == (f"error: no results database at {tmp_path / 'nothing' / 'results.db'}; "
                               "run a suite first: python -m mlbench run suites/quickstart.yaml")
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.db").write_bytes(b"")
    for cmd in ("leaderboard", "report"):
        assert main([cmd, str(tmp_path / "other")]) == 2
        assert "is not an mlbench results database" in capsys.readouterr().err


def test_run_with_sim_set_and_a_root_of_other_data_names_both_keys(tmp_path, capsys):
    nih = tmp_path / "nih"
    nih.mkdir()
    (nih / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels\n")
    path = write(tmp_path, eight_runs(tmp_path))
    assert main(["run", path, "--set", f"dataset.root={nih}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: `dataset.root` {str(nih)!r} is not a CXR14-sim folder")
    assert "`dataset.sim` is set" in err and "--set dataset.sim=null" in err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_dry_run_without_data_lists_runs_and_says_why_they_cannot_start(tmp_path, capsys):
    path = write(tmp_path, eight_runs(tmp_path, dataset={
        "root": str(tmp_path / "absent"), "sim": None, "val_fraction": 0.1}))
    assert main(["run", path, "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "8 runs" in captured.out
    assert "a real run would stop here" in captured.err and "absent" in captured.err
    assert main(["run", path]) == 2  # and the real run does stop


def test_a_rerun_with_nothing_to_do_says_so_and_checks_results_db_once(tmp_path, sim_root,
                                                                       capsys):
    import sqlite3

    suite = tiny_suite(sim_root, tmp_path / "out", seeds=[0])
    suite["grid"]["loss"] = ["bce", "msml"]
    path = write(tmp_path, suite)
    assert main(["run", path, "--no-progress"]) == 0
    assert re.search(r"2 finished, 0 failed of 2 runs in \d+ s", capsys.readouterr().out)
    conn = sqlite3.connect(tmp_path / "out" / "results.db")
    try:  # run stored each run's strata (what the leaderboard reads)
        assert conn.execute("SELECT count(*) FROM strata").fetchone() == (2,)
    finally:
        conn.close()
    res = run_cli("run", path, "--no-progress", "--log-level", "DEBUG")
    assert res.returncode == 0, res.stderr
    assert "nothing to do: all 2 runs already finished. Results:" in res.stdout
    assert " in 0 s" not in res.stdout
    # a rerun opens results.db five times (the command's check, the driver's, two reads,
    # the leaderboard): the damaged-page check reads the file once
    assert res.stderr.count("PRAGMA quick_check of") == 1, res.stderr
