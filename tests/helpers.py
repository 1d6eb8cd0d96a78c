"""What the tests share: the tiny suite, results planted by hand, what a run stored, the
finding names of planted results, and the command line run in-process or as a process.

Import as ``from tests.helpers import ...`` (the repository root is on ``sys.path`` under
``python -m pytest``, as for ``tools`` and ``benchmarks``). Fixtures live in the conftest.py
files; these are plain functions and constants.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# The finding names of results planted by hand (14, as ChestX-ray14's; not its real names).
FINDINGS = tuple(f"F{i}" for i in range(14))


class NanAt:
    """A loss for the engine: BCE, but NaN at training call number ``at`` (0-based;
    evaluation calls, made without grad, are not counted)."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, logits, targets):
        import torch
        import torch.nn.functional as F

        out = F.binary_cross_entropy_with_logits(logits, targets)
        if not torch.is_grad_enabled():
            return out
        self.calls += 1
        return out * float("nan") if self.calls - 1 == self.at else out


# ------------------------------------------------------------------ the tiny suite
# 2 runs (bce, msml; seed 0) of test_resnet at 16 px, 2 epochs of 2 steps, on CXR14-sim
# (120 images of 32 px; the session's shared folder is the `sim_root` fixture).
BASE = {
    "name": "tiny",
    "dataset": {"sim": {"images": 120, "size": 32, "seed": 0}, "image_size": 16,
                "val_fraction": 0.2},
    "grid": {"backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce", "msml"]},
    "seeds": [0],
    "model": {"pretrained": False},
    "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3,
              "max_steps_per_epoch": 2, "augment": False, "device": "cpu"},
    "eval": {"bootstrap": 10, "reference": "bce"},
}

# 8 runs: resnet10t x {linear, bilinear} x {bce, bce+0.1*msml} x seeds {0, 1}, 1 epoch at
# 32 px on 160 images, the default device ("auto"), the sim generated into the output (the
# suite tests, the CLI, the results store, the leaderboard).
EIGHT_RUNS = {
    "dataset": {"sim": {"images": 160}, "image_size": 32},
    "grid": {"backbone": ["resnet10t"], "head": ["linear", "bilinear"],
             "loss": ["bce", "bce+0.1*msml"]},
    "seeds": [0, 1],
    "model": {"head_kwargs": {}},
    "train": {"epochs": 1, "device": None},
    "eval": {"bootstrap": 20},
}

# A tuned suite: bce and the composite bce+{alpha}*msml on seeds 0-2, 1 epoch, no bootstrap.
# It has no `tune:` section: each test gives its own as a change (``tune=TUNE``: two learning
# rates, two alphas), which so replaces nothing.
TUNED = {
    "name": "tiny-tune",
    "grid": {"loss": ["bce", "bce+{alpha}*msml"]},
    "seeds": [0, 1, 2],
    "train": {"epochs": 1},
    "eval": {"bootstrap": 0},
}
TUNE = {"train": {"lr": [1e-3, 3e-3]}, "loss": {"bce+{alpha}*msml": {"alpha": [0.1, 0.3]}}}


def fake_selection(plan, pick: int = 0) -> dict:
    """Every cell of a tuning ``plan`` as if its selection runs had finished (validation AUC
    0.5 each), the setting at position ``pick`` chosen: cell key -> ``Selection``."""
    from mlbench.suite import Selection

    out = {}
    for c in plan.cells:
        n = len(c.settings)
        out[c.key] = Selection(*c.key, c.budget, c.space, plan.stages, c.seeds,
                               [s.values for s in c.settings], [s.index for s in c.settings],
                               [{k: r.id for k, r in s.runs.items()} for s in c.settings],
                               [0.5] * n, ["finished"] * n, c.settings[pick].index)
    return out


def tiny_suite(root: Path | str | None, out: Path | str, *layers: Mapping,
               **changes) -> dict:
    """The tiny suite (``BASE``) as a mapping, with changes.

    Args:
        root: ``dataset.root``, the CXR14-sim folder; None leaves it out (the sim is then
            generated into ``OUT/cxr14-sim``).
        out: ``output``.
        layers: mappings of changes applied first, in order (``EIGHT_RUNS``, ``TUNED``).
        changes: applied last. Its keys may be dotted (``**{"train.epochs": 3}``; the keys
            of a mapping value are taken as written). A mapping value sets the keys it names
            and keeps the others where there is a mapping (``train={"epochs": 3}`` is
            ``train.epochs=3``); any other value, or a mapping where there is none, replaces
            what is there. None leaves the key out, so that the schema's default applies
            (``**{"dataset.sim": None}``: no CXR14-sim; ``train={"device": None}``: "auto").
    """
    suite = copy.deepcopy(BASE)
    if root is not None:
        suite["dataset"]["root"] = str(root)
    suite["output"] = str(out)
    for change in (*layers, changes):
        for key, value in change.items():
            _set(suite, key.split("."), copy.deepcopy(value))
    return suite


def _set(tree: dict, path: list[str], value) -> None:
    *parents, last = path
    for name in parents:
        tree = tree.setdefault(name, {})
    if value is None:
        tree.pop(last, None)
    elif isinstance(value, Mapping) and isinstance(tree.get(last), dict):
        for key, sub in value.items():  # literal keys: a loss spec may hold a dot
            _set(tree[last], [key], sub)
    else:
        tree[last] = value


def write_suite(path: Path, suite: dict) -> str:
    """``suite`` written as YAML to ``path``; the path as the command line takes it."""
    Path(path).write_text(yaml.safe_dump(suite, sort_keys=False))
    return str(path)


# ------------------------------------------------------------------ results planted by hand
def fake_targets(rng: np.random.Generator, n: int, classes: int = len(FINDINGS),
                 both: int = 1) -> np.ndarray:
    """(n, classes) float32 labels, 30% positive; the first ``both`` rows positive in every
    class and the next ``both`` negative, so that every class has both labels."""
    targets = (rng.random((n, classes)) < 0.3).astype(np.float32)
    targets[:both], targets[both:2 * both] = 1, 0
    return targets


def fake_scores(targets: np.ndarray, signal: float, rng: np.random.Generator) -> np.ndarray:
    """Scores in (0, 1) of ``targets``: sigmoid(signal * targets + N(0, 1) noise); the larger
    the signal, the higher the AUC (0: chance)."""
    return 1 / (1 + np.exp(-(signal * targets + rng.normal(size=targets.shape))))


def plant(db, run_id: str, targets: np.ndarray, scores: np.ndarray, *,
          findings: Iterable[str] = FINDINGS, n_boot: int = 0, seed: int = 0,
          records: Iterable[tuple] = (), epochs: list[dict] | None = None, claim: bool = True,
          **finish) -> None:
    """Store run ``run_id`` of ``db`` (registered, pending) as finished, as the driver would:
    the metric records mlbench.stats computes of (targets, scores) (bootstrap ``n_boot`` with
    ``seed``) plus ``records``, the test predictions and the epoch curve ``epochs``.

    Args:
        claim: claim the run first; False for a run the test claimed itself.
        finish: more of ``ResultsDB.finish`` (device, image_ids, patient_ids).
    """
    from mlbench.stats import metric_records

    if claim:
        claimed = db.claim([run_id])
        assert claimed is not None and claimed["id"] == run_id, run_id
    recs = metric_records(targets, scores, list(findings), n_boot=n_boot, seed=seed)
    db.finish(run_id, [*recs, *records], scores, targets, epochs=epochs, **finish)


def fill(db, runs, signal_of: Callable[[str], float], seed: int = 0,
         fail: set | None = None) -> None:
    """Register ``runs`` and plant each (``plant``): one set of 120 targets, scores of signal
    ``signal_of(loss)``, a 3-epoch curve; the runs of the losses in ``fail`` fail instead."""
    db.add_runs(runs)
    db.set_meta("findings", FINDINGS)
    targets = fake_targets(np.random.default_rng(seed), 120)
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_mean_auc": 0.5 + 0.1 * e}
               for e in range(3)]
    for run in runs:
        if fail and run.loss in fail:
            db.claim([run.id])
            db.fail(run.id, "non-finite training loss at step 3", 3)
            continue
        rng = np.random.default_rng([seed, run.seed, len(run.loss)])
        plant(db, run.id, targets, fake_scores(targets, signal_of(run.loss), rng), n_boot=20,
              seed=run.seed, epochs=history)


def fill_suite(suite, strength: Mapping[str, float], image_size: int,
               analysis: bool = False):
    """A results folder planted by hand for ``suite``'s runs (``fill`` with each loss's
    signal ``strength[loss]``), reference bce, a sim dataset of ``image_size`` px and, with
    ``analysis``, the suite's analysis section (its primary contrasts); returns its output."""
    from mlbench.db import ResultsDB

    with ResultsDB(suite.output) as db:
        fill(db, suite.runs, strength.__getitem__)
        db.set_meta("reference", "bce")
        if analysis:
            db.set_meta("analysis", suite.config["analysis"])
        db.set_meta("dataset", {"kind": "sim", "root": "x", "image_size": image_size})
    return suite.output


# ------------------------------------------------------------------ what runs stored
TIMING = frozenset({"train_seconds", "train_images_per_s", "train_time", "eval_time",
                    "images_per_s"})


def stored_results(out: Path) -> dict:
    """What each run of ``OUT/results.db`` stored, by run id, timings left out (they differ
    between attempts): equal results mean bit-identical metrics, epoch curves and test scores."""
    from mlbench.db import ResultsDB

    with ResultsDB(out, readonly=True) as db:
        got = {}
        for run in db.runs():
            pred = db.predictions(run["id"])
            got[run["id"]] = {
                "status": run["status"],
                "metrics": sorted((m["name"], m["finding"], m["value"], m["lo"], m["hi"])
                                  for m in db.metrics(run["id"]) if m["name"] not in TIMING),
                "epochs": [{k: v for k, v in e.items() if k not in TIMING}
                           for e in db.epochs(run["id"])],
                "scores": None if pred is None else pred[0].tobytes()}
    return got


def _read(out: Path, sql: str):
    conn = sqlite3.connect(f"file:{Path(out) / 'results.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def statuses(out: Path) -> dict[str, str]:
    """run id -> status, read without writing anything."""
    return dict(_read(out, "SELECT id, status FROM runs"))


def trained(out: Path) -> dict[str, int]:
    """run id -> how many times it was stored as finished (1 = trained once)."""
    return dict(_read(out, "SELECT r.id, (SELECT count(*) FROM status_events e WHERE "
                           "e.run_id = r.id AND e.status = 'finished') FROM runs r"))


def integrity(out: Path) -> str:
    """SQLite's integrity check of ``OUT/results.db`` ("ok")."""
    return _read(out, "PRAGMA integrity_check")[0][0]


def fingerprint(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path: equal means nothing changed."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ the command line
def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m mlbench ARGV`` in this process: (exit code, stdout, stderr)."""
    from mlbench.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


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


def _env(**extra) -> dict:
    """This process's environment (with the test's core pool), one thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


# The processes ``spawn`` started; the autouse fixture ``no_process_left`` (tests/conftest.py)
# kills what is left of them after each test.
SPAWNED: list[subprocess.Popen] = []


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
    SPAWNED.append(proc)
    return proc


def kill_spawned() -> None:
    """Kill the process group of every process ``spawn`` started that is still running."""
    while SPAWNED:
        proc = SPAWNED.pop()
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


def kill_once_a_run_is_stored(proc: subprocess.Popen, out: Path, timeout: float) -> None:
    """Kill the process group of ``proc``, a driver writing ``OUT/results.db`` (stderr piped
    as bytes), as soon as one run is finished there and another is running (seen through the
    database), or after ``timeout`` seconds; fails if the driver ends first."""
    from mlbench.db import ResultsDB

    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if (out / "results.db").exists():
                with ResultsDB(out) as db:
                    finished, running = db.runs("finished"), db.runs("running")
                if finished and running:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """Wait for ``proc``: (exit code, stdout, stderr)."""
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
    namespace as root; chmod otherwise: then ``[]``); skips where neither can be had."""
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
