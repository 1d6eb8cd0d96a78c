"""Helpers of the reliability catalogue: run the CLI in-process or as a process, fingerprint
folders, tiny suites on one shared CXR14-sim folder, read-only and full folders."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mlbench.cli import main

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m mlbench ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def fingerprint(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path: equal means nothing changed."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


def error_lines(err: str) -> list[str]:
    """The non-empty lines a command wrote to stderr, its log lines (``mlbench.logs``'s
    console format, DEBUG to WARNING) left out."""
    return [line for line in err.splitlines() if line.strip() and not _LOG_LINE.match(line)]


def one_error(err: str) -> str:
    """The one line ``error: ...`` of stderr (asserts there is exactly one line, no traceback)."""
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ tiny suites
def tiny(root: Path, out: Path, **changes) -> dict:
    """2 runs (bce, msml; seed 0) of test_resnet at 16 px on the CXR14-sim at ``root``."""
    suite = {
        "name": "tiny",
        "dataset": {"root": str(root), "sim": {"images": 120, "size": 32, "seed": 0},
                    "image_size": 16, "val_fraction": 0.2},
        "grid": {"backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce", "msml"]},
        "seeds": [0],
        "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3,
                  "max_steps_per_epoch": 2, "augment": False, "device": "cpu"},
        "eval": {"bootstrap": 10, "reference": "bce"},
        "output": str(out),
    }
    suite.update(changes)
    return suite


def write_suite(path: Path, suite: dict) -> str:
    path.write_text(yaml.safe_dump(suite))
    return str(path)


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory) -> Path:
    """One CXR14-sim folder with its prepared cache (16 px), shared by the catalogue."""
    from mlbench.driver import prepare_data
    from mlbench.suite import load_suite

    root = tmp_path_factory.mktemp("reliability") / "sim"
    prepare_data(load_suite(tiny(root, root.parent / "unused"), env={}).dataset,
                 progress=False)
    return root


@pytest.fixture(scope="session")
def reference(tmp_path_factory, sim_root) -> dict:
    """What the tiny suite stores when nothing interrupts it: every resumed, raced or waited-for
    run must store the same (``results``)."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_suite(folder / "suite.yaml", tiny(sim_root, folder / "out"))
    assert main(["run", path, "--no-progress"]) == 0
    return results(folder / "out")


@pytest.fixture(autouse=True)
def private_core_pool(tmp_path, monkeypatch):
    """Each test claims CPU cores from its own pool (``mlbench.driver.cores``), not from the
    machine's, so that tests and runs of other people on the machine do not make it wait."""
    monkeypatch.setenv("MLBENCH_CORE_DIR", str(tmp_path / "cores"))


# ------------------------------------------------------------------ results.db
def statuses(out: Path) -> dict[str, str]:
    """run id -> status, read without writing anything."""
    conn = sqlite3.connect(f"file:{Path(out) / 'results.db'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT id, status FROM runs").fetchall())
    finally:
        conn.close()


def trained(out: Path) -> dict[str, int]:
    """run id -> how many times it was stored as finished (1 = trained once)."""
    conn = sqlite3.connect(f"file:{Path(out) / 'results.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT r.id, (SELECT count(*) FROM status_events e WHERE "
                            "e.run_id = r.id AND e.status = 'finished') FROM runs r").fetchall()
        return dict(rows)
    finally:
        conn.close()


def results(out: Path) -> dict:
    """What each run stored, timings left out (they differ between attempts): equal results
    mean bit-identical metrics, epoch curves and test scores."""
    from mlbench.db import ResultsDB

    timing = {"train_seconds", "train_images_per_s", "train_time", "eval_time", "images_per_s"}
    with ResultsDB(out, readonly=True) as db:
        got = {}
        for run in db.runs():
            pred = db.predictions(run["id"])
            got[run["id"]] = {
                "status": run["status"],
                "metrics": sorted((m["name"], m["finding"], m["value"], m["lo"], m["hi"])
                                  for m in db.metrics(run["id"]) if m["name"] not in timing),
                "epochs": [{k: v for k, v in e.items() if k not in timing}
                           for e in db.epochs(run["id"])],
                "scores": None if pred is None else pred[0].tobytes()}
    return got


def integrity(out: Path) -> str:
    conn = sqlite3.connect(f"file:{Path(out) / 'results.db'}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# ------------------------------------------------------------------ processes
def _env(**extra) -> dict:
    """This process's environment (with the test's core pool), one thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


def spawn(*argv: str, hold: Path | None = None, prefix: list[str] | None = None,
          env: dict | None = None) -> subprocess.Popen:
    """``python -m mlbench ARGV`` as a process (stdout/stderr piped); with ``hold``, the first
    process to finish epoch 0's checkpoint writes "PID RUN_ID" to ``hold`` and sleeps, so a
    test can kill it (or its parent) at a known point (``$MLBENCH_FAULT``, docs/HARNESS.md)."""
    env = dict(env or {})
    if hold:
        env["MLBENCH_FAULT"] = f"after_epoch:0:hold:{hold}"
    proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "mlbench", *argv], cwd=REPO,
                            env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _SPAWNED.append(proc)
    return proc


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left():
    """A test that fails half-way leaves no driver or worker behind (its process group)."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> str:
    """Wait until ``path`` exists (returns its text); fails if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return path.read_text()
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended ({proc.returncode}) before {path} appeared:\n{err}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{path} did not appear within {timeout} s")


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_cli(*argv: str, prefix: list[str] | None = None, timeout: float = 300):
    """``python -m mlbench ARGV`` as a process, to its end: CompletedProcess."""
    return subprocess.run([*(prefix or []), sys.executable, "-m", "mlbench", *argv], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ read-only and full folders
def _can_mount() -> bool:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def read_only_prefix(folder: Path) -> list[str]:
    """Command prefix under which ``folder`` is read-only (a read-only bind mount in a mount
    namespace as root; chmod otherwise); skips where neither can be had."""
    if os.geteuid() != 0:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        return []
    if not _can_mount():
        pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
    return ["unshare", "-m", "sh", "-c",
            f'mount --bind -o ro {folder} {folder} && exec "$@"', "sh"]


def full_disk_prefix(folder: Path, size: str, back: Path) -> list[str]:
    """Command prefix under which ``folder`` is a file system of ``size`` (a tmpfs in a mount
    namespace) holding a copy of what ``folder`` held; what it holds when the command ends is
    copied to ``back`` (the tmpfs goes with the namespace). Skips where that cannot be had."""
    if os.geteuid() != 0 or not _can_mount():
        pytest.skip("cannot mount a small file system here (needs root and mount namespaces)")
    seed = folder.with_name(folder.name + ".seed")
    folder.rename(seed)
    folder.mkdir()
    back.mkdir(parents=True, exist_ok=True)
    script = (f"mount -t tmpfs -o size={size} tmpfs {folder} && cp -a {seed}/. {folder}/ && "
              f'{{ "$@"; rc=$?; cp -a {folder}/. {back}/; exit $rc; }}')
    return ["unshare", "-m", "sh", "-c", script, "sh"]
