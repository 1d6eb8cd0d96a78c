"""``mlbench status``: counts per setup, running runs from their run files, failed runs with
the command to retry, ETA; text and JSON; read-only."""

from __future__ import annotations

import json

import pytest

from mlbench.cli import main
from mlbench.db import ResultsDB
from mlbench.logs import collect, fmt_seconds, render_text

pytestmark = pytest.mark.observability


def test_collect_agrees_with_results_db(fake_out):
    out, ids = fake_out
    st = collect(out)
    with ResultsDB(out, readonly=True) as db:
        counts = db.counts()
        runs = db.runs()
    assert {k: st["counts"][k] for k in counts} == counts
    assert st["counts"]["total"] == len(runs) == 8
    assert st["suite"] == "fake"
    per_setup = {(s["backbone"], s["head"]): s for s in st["setups"]}
    for head in ("linear", "bilinear"):
        mine = [r for r in runs if r["head"] == head]
        s = per_setup[("resnet10t", head)]
        assert s["total"] == len(mine)
        for status in ("pending", "running", "finished", "failed"):
            assert s[status] == sum(r["status"] == status for r in mine)

    [run] = st["running"]
    assert run["id"] == ids["running"]
    assert run["worker"] == "otherhost:4242" and run["gpu"] == "1" and run["device"] == "cuda"
    assert run["epochs_done"] == 1 and run["epochs"] == 3
    assert 25 <= run["elapsed_s"] <= 120
    # the four finished runs took 60 s each, 12.5 s of it training: the ETA counts training
    # only, not the worker's start-up, data loading or evaluation
    assert st["mean_run_s"] == pytest.approx(12.5)
    assert run["eta_s"] == pytest.approx(st["mean_run_s"] * 2 / 3, abs=0.2)  # 2 of 3 epochs left
    # ETA: what the running run has left plus 2 pending runs, over 1 run in flight
    assert abs(st["eta_s"] - (run["eta_s"] + 2 * st["mean_run_s"])) < 1

    [failed] = st["failed"]
    assert failed["id"] == ids["failed"]
    assert failed["error"] == "FloatingPointError: non-finite training loss at step 3"
    assert failed["failed_step"] == 3
    assert "--retry-failed" in failed["retry"] and f"--only loss={failed['loss']}" in \
        failed["retry"] and f"--only seed={failed['seed']}" in failed["retry"]
    assert f"--out {out}" in failed["retry"] and failed["retry"].startswith(
        "python -m mlbench run SUITE")  # no `run` recorded in OUT/logs/commands.json


def test_retry_command_has_the_suite_file_and_overrides_of_the_run(fake_out, tmp_path):
    from mlbench.logs import record_command

    out, ids = fake_out
    suite = tmp_path / "my suite.yaml"
    suite.write_text("name: x\n")
    record_command(out, suite, ["train.lr=1e30", "seeds=[0, 1]"], [ids["failed"], "other"])
    record_command(out, suite, ["train.epochs=9"], ["other"])  # later, other runs
    st = collect(out)
    assert st["failed"][0]["retry"] == (
        f"python -m mlbench run '{suite.resolve()}' --out {out} --set train.lr=1e30 "
        f"--set 'seeds=[0, 1]' --retry-failed --only backbone=resnet10t --only head=bilinear "
        f"--only loss=bce --only seed=0")
    assert st["retry_failed"] == [
        f"python -m mlbench run '{suite.resolve()}' --out {out} --set train.lr=1e30 "
        "--set 'seeds=[0, 1]' --retry-failed"]


def test_text_screen_and_json_command(fake_out, capsys):
    out, ids = fake_out
    text = render_text(collect(out))
    assert "8 runs: 4 finished, 1 running, 2 pending, 1 failed" in text
    assert ids["running"] in text and "gpu1" in text and "1/3" in text
    assert ids["failed"] in text and "retry: python -m mlbench run" in text

    assert main(["status", str(out), "--format", "json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["counts"]["finished"] == 4 and st["running"][0]["id"] == ids["running"]
    assert main(["status", str(out)]) == 0
    assert "running:" in capsys.readouterr().out


def test_status_writes_nothing(fake_out, capsys):
    import sqlite3

    out, _ = fake_out
    conn = sqlite3.connect(out / "results.db")
    conn.execute("PRAGMA journal_mode = DELETE")  # no -wal/-shm files to begin with
    conn.close()

    def snapshot():
        return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*")}

    before = snapshot()
    assert main(["status", str(out), "--format", "json"]) == 0
    json.loads(capsys.readouterr().out)
    assert snapshot() == before


def test_status_reads_while_the_driver_holds_a_write_transaction(fake_out, capsys):
    out, ids = fake_out
    with ResultsDB(out) as db, db.transaction():  # BEGIN IMMEDIATE, as claim/finish do
        db.conn.execute("UPDATE runs SET status='running' WHERE status='pending'")
        assert main(["status", str(out), "--format", "json"]) == 0
        st = json.loads(capsys.readouterr().out)
        assert st["counts"]["pending"] == 2  # the committed state, not the open transaction
    assert collect(out)["counts"]["running"] == 3


def test_missing_results_db_is_exit_2(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "no results database" in capsys.readouterr().err


def test_watch_prints_one_json_line_per_update(fake_out):
    import io

    from mlbench.commands.results import print_status as status

    out, _ = fake_out
    buf = io.StringIO()
    assert status(out, fmt="json", watch=True, interval=0.01, stream=buf, max_updates=3) == 0
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["counts"]["total"] == 8 for x in lines)


def test_fmt_seconds():
    assert fmt_seconds(None) == "?" and fmt_seconds(42) == "42s"
    assert fmt_seconds(75) == "1m15s" and fmt_seconds(3725) == "1h02m"


def test_the_documented_json_keys_are_the_emitted_ones(fake_out):
    """docs/HARNESS.md lists `status --format json`'s keys, level by level: exactly these."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "HARNESS.md").read_text()
    part = doc[doc.index("`--format json` prints the same as one object"):]
    part = part[:part.index("\n\n", part.index("\n- top level:"))]
    documented = {}
    for item in re.split(r"\n- ", part)[1:]:
        where, names = item.split(":", 1)
        documented[where.strip().strip("`")] = re.findall(r"`([a-z_]+)`", names)
    st = collect(fake_out[0])
    assert st["test_sets"][0]["losses"] and st["running"] and st["failed"]
    emitted = {"top level": list(st), "counts": list(st["counts"]),
               "setups[]": list(st["setups"][0]), "running[]": list(st["running"][0]),
               "failed[]": list(st["failed"][0]), "test_sets[]": list(st["test_sets"][0]),
               "test_sets[].losses[]": list(st["test_sets"][0]["losses"][0])}
    assert {k: sorted(v) for k, v in documented.items()} == \
        {k: sorted(v) for k, v in emitted.items()}
    assert "point estimates" in st["test_sets_note"] and "leaderboard" in st["test_sets_note"]
