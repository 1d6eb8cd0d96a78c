"""The Python API (``mlbench.run``, ``mlbench.results``) as a user calls it: from a plain
script (no ``__main__`` guard) in a fresh interpreter, on the tiny suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO, cli, one_error, tiny_suite, write_suite

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _script(tmp_path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "user_script.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_import_mlbench_is_light_and_names_load_on_use():
    probe = ("import sys, mlbench; before = sorted(m for m in ('torch', 'pandas', 'numpy') "
             "if m in sys.modules); f = mlbench.run; e = mlbench.MlbenchError; "
             "print(before, 'run' in dir(mlbench), issubclass(e, Exception))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True", "True"]
    with pytest.raises(AttributeError):
        import mlbench

        mlbench.no_such_name  # noqa: B018


@pytest.mark.slow
def test_a_plain_script_runs_a_suite_and_reads_its_tables(tmp_path, sim_root, capsys):
    out = tmp_path / "my out"  # a space: hints and paths must survive it
    suite = write_suite(tmp_path / "tiny.yaml", tiny_suite(sim_root, tmp_path / "unused"))
    proc = _script(tmp_path, f"""
        import json, logging, os, signal, sys
        import mlbench

        import timm, mlbench.driver, mlbench.leaderboard.analysis  # torch, timm: their own variables
        env, handler = dict(os.environ), signal.getsignal(signal.SIGTERM)
        done = mlbench.run({suite!r}, overrides=["train.epochs=1"], out={str(out)!r},
                           workers=1)
        res = done.results()
        board = res.leaderboard
        print(json.dumps({{
            "ok": done.ok, "finished": done.finished, "ids": list(done.ids),
            "output": str(done.output),
            "losses": sorted(board["loss"]), "bce_delta": float(
                board.loc[board["loss"] == "bce", "delta"].iloc[0]),
            "columns": list(board.columns), "auc": board["mean_auc"].tolist(),
            "runs": res.runs[["id", "status"]].values.tolist(),
            "per_class": len(res.per_class), "findings": res.per_class["finding"].nunique(),
            "reference": res.reference, "notes": len(res.notes),
            "env_diff": sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
            "sigterm_same": signal.getsignal(signal.SIGTERM) == handler,
            "root_handlers": len(logging.getLogger().handlers),
        }}))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"] and got["finished"] == 2 and got["output"] == str(out)
    assert got["losses"] == ["bce", "msml"] and got["bce_delta"] == 0.0
    assert {"mean_auc", "ci_lo", "ci_hi", "delta", "p", "p_holm", "significant"} <= set(
        got["columns"])
    assert all(0.0 <= a <= 1.0 for a in got["auc"])
    assert sorted(got["runs"]) == sorted([i, "finished"] for i in got["ids"])
    assert got["per_class"] == 2 * got["findings"] and got["findings"] > 0
    assert got["reference"] == "bce"
    assert got["env_diff"] == [] and got["sigterm_same"] and got["root_handlers"] == 0
    # the same ids as the command line's dry run of that suite
    code, text, _ = cli(capsys, "run", suite, "--set", "train.epochs=1", "--out", str(out),
                        "--dry-run", "--format", "json")
    assert code == 0
    assert sorted(r["id"] for r in json.loads(text)["runs"]) == sorted(got["ids"])


def test_errors_are_exceptions_with_the_commands_one_line_message(tmp_path, capsys):
    suite = write_suite(tmp_path / "tiny.yaml", tiny_suite(tmp_path / "sim", tmp_path / "o"))
    proc = _script(tmp_path, f"""
        import json
        import mlbench

        got = []
        for call in (lambda: mlbench.run({suite!r}, overrides=["train.lrr=1"]),
                     lambda: mlbench.run({suite!r}, workers=0),
                     lambda: mlbench.run({suite!r}, bogus=1),
                     lambda: mlbench.results({str(tmp_path / "nothing")!r})):
            try:
                call()
            except mlbench.MlbenchError as exc:
                got.append([str(exc), exc.code])
        print(json.dumps(got))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got) == 4 and all(code == 2 for _, code in got)
    assert all("\n" not in msg for msg, _ in got)
    code, _, err = cli(capsys, "run", suite, "--set", "train.lrr=1")
    assert code == 2 and one_error(err) == f"error: {got[0][0]}"
    code, _, err = cli(capsys, "run", suite, "--workers", "0")
    assert code == 2 and one_error(err) == f"error: {got[1][0]}"
    assert "bogus" in got[2][0] and "workers" in got[2][0]
    code, _, err = cli(capsys, "leaderboard", str(tmp_path / "nothing"))
    assert code == 2 and one_error(err) == f"error: {got[3][0]}"
