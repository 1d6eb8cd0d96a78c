"""results.db unreadable, unwritable or full; outputs that cannot be written: one line naming
the path and the fix, exit code 2, and nothing lost (issue 15, items 4, 6 and 7; the
database's integrity holds). The HTML escaping: tests/leaderboard/test_from_runs.py."""

from __future__ import annotations

import shutil

import pytest

from mlbench.cli import main
from tests.helpers import (
    cli,
    fingerprint,
    full_disk_prefix,
    integrity,
    one_error,
    read_only_prefix,
    run_cli,
    statuses,
    tiny_suite,
    trained,
    write_suite,
)

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sim_root):
    """(suite file, output folder) of the tiny suite, both runs finished."""
    folder = tmp_path_factory.mktemp("finished")
    path = write_suite(folder / "suite.yaml", tiny_suite(sim_root, folder / "out"))
    assert main(["run", path, "--no-progress"]) == 0
    return path, folder / "out"


def _copy(out, dest):
    shutil.copytree(out, dest, ignore=shutil.ignore_patterns("checkpoints"))
    return dest


# ------------------------------------------------------------------ damaged results.db
@pytest.mark.parametrize("argv", [["run", "{suite}", "--out", "{out}", "--no-progress"],
                                  ["run", "{suite}", "--out", "{out}", "--dry-run"],
                                  ["leaderboard", "{out}"],
                                  ["report", "{out}", "-o", "{out}/../r.html"]],
                         ids=["run", "dry-run", "leaderboard", "report"])
def test_a_damaged_results_db_is_named_and_left_alone(finished, tmp_path, capsys, argv):
    suite, _ = finished
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.db").write_bytes(b"these are not the results you are looking for\n" * 200)
    before = (out / "results.db").read_bytes()
    code, _, err = cli(capsys, *[a.format(suite=suite, out=out) for a in argv])
    assert code == 2
    line = one_error(err)
    assert line.startswith(f"error: {out / 'results.db'} is damaged or not a results database "
                           "(file is not a database); ")
    assert ("--out DIR" in line) == (argv[0] == "run")
    assert (out / "results.db").read_bytes() == before  # nothing beside it either:
    assert sorted(p.name for p in out.iterdir() if p.name != "logs") == ["results.db"]


# ------------------------------------------------------------------ read-only, full
@pytest.mark.slow
def test_run_into_a_read_only_results_folder_is_one_line_and_changes_nothing(finished,
                                                                              tmp_path):
    suite, out = finished
    ro = _copy(out, tmp_path / "ro")
    before = fingerprint(ro)
    prefix = read_only_prefix(ro)
    res = run_cli("run", suite, "--out", str(ro), "--set", "seeds=[0, 1]", "--no-progress",
                  prefix=prefix)
    assert res.returncode == 2, res.stderr
    line = one_error(res.stderr)
    assert str(ro) in line and ("writable" in line or "Read-only" in line), line
    assert fingerprint(ro) == before


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_loses_no_finished_run(finished, tmp_path, capsys):
    suite, out = finished
    full, back = _copy(out, tmp_path / "full"), tmp_path / "back"
    kept = statuses(full)
    prefix = full_disk_prefix(full, "200k", back)
    res = run_cli("run", suite, "--out", str(full), "--set", "seeds=[0, 1, 2, 3]",
                  "--checkpoint-dir", str(tmp_path / "checkpoints"), "--no-progress",
                  prefix=prefix)
    assert res.returncode == 2, res.stderr
    line = one_error(res.stderr)
    assert line.startswith(f"error: cannot write {full / 'results.db'}: database or disk is "
                           "full; free space"), line
    assert integrity(back) == "ok"
    assert {k: statuses(back)[k] for k in kept} == kept  # what was finished stays finished
    # with space again, the same command completes the suite, each run trained once
    code, _, err = cli(capsys, "run", suite, "--out", str(back), "--set", "seeds=[0, 1, 2, 3]",
                       "--checkpoint-dir", str(tmp_path / "checkpoints"), "--no-progress")
    assert code == 0, err
    assert set(statuses(back).values()) == {"finished"} and len(statuses(back)) == 8
    assert set(trained(back).values()) == {1}


def test_leaderboard_on_a_read_only_copy_writes_nothing_beside_it(finished, tmp_path, capsys):
    _, out = finished
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "results.db", copy / "results.db")
    (copy / "results.db").chmod(0o444)
    code, text, err = cli(capsys, "leaderboard", str(copy))
    assert code == 0, err
    assert "msml" in text
    assert sorted(p.name for p in copy.iterdir()) == ["results.db"]  # no -wal, no -shm


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("argv", [["report", "{out}", "-o", "{file}/r.html"],
                                  ["leaderboard", "{out}", "--out", "{file}/sub/lb.md"]],
                         ids=["report -o", "leaderboard --out"])
def test_an_output_under_a_file_says_what_is_wrong(finished, tmp_path, capsys, argv):
    _, out = finished
    file = tmp_path / "file"
    file.write_text("mine")
    code, _, err = cli(capsys, *[a.format(out=out, file=file) for a in argv])
    assert code == 2
    assert one_error(err).endswith(f": {file} is a file, not a folder; choose another "
                                   f"{'-o FILE' if argv[0] == 'report' else '--out FILE'}")
    assert file.read_text() == "mine"


def _damage_a_middle_page(db) -> None:
    """Garbage over one page in the middle of the file (its header and first page intact)."""
    import sqlite3

    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 4
    data = bytearray(db.read_bytes())
    middle = pages // 2 * page
    data[middle:middle + page] = bytes([0xA5]) * page
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("argv", [["run", "{suite}", "--out", "{out}", "--no-progress",
                                   "--set", "seeds=[0, 1]"],
                                  ["run", "{suite}", "--out", "{out}", "--no-progress"],
                                  ["leaderboard", "{out}"],
                                  ["report", "{out}", "-o", "{out}/../r.html"]],
                         ids=["run-new-seed", "run", "leaderboard", "report"])
def test_a_results_db_with_one_damaged_page_is_refused_untouched(finished, tmp_path, capsys,
                                                                argv):
    suite, out = finished
    out = _copy(out, tmp_path / "out")
    _damage_a_middle_page(out / "results.db")
    before = fingerprint(out)
    code, _, err = cli(capsys, *[a.format(suite=suite, out=out) for a in argv])
    assert code == 2, err
    line = one_error(err)
    assert line.startswith(f"error: {out / 'results.db'} is damaged"), line
    assert fingerprint(out) == before  # results.db byte for byte, nothing added beside it
