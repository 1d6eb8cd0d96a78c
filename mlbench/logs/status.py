"""Where a suite stands, read while it runs (``python -m mlbench status OUT``).

Reads ``OUT/results.db`` read-only (``ResultsDB(path, readonly=True)``: no lock taken, no
file written) and the run files ``OUT/logs/<run id>.jsonl`` of the running runs (which
worker, device, epoch). ETA from the mean training time of the finished runs (their stored
``train_seconds``: the epochs, not the worker's start-up, data loading or evaluation; claim to
store for runs that lack it): a running run has that mean's share of its epochs left (before
its first epoch: the whole mean; before any run finished: its own pace); the suite has its
running runs' ETAs plus the pending runs' means, spread over the runs in flight.

:func:`collect` returns a plain dict (``--format json`` prints it); :func:`render_text` is
the screen; the command (``mlbench.commands.results``, ``--watch`` refreshes) prints them.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from mlbench.db import STATUSES, ResultsDB, same_host, worker_alive
from mlbench.logs.driverlog import where
from mlbench.logs.runlog import (
    command_for,
    first_line,
    read_commands,
    read_run_log,
    run_log_path,
    summarize,
)

STATUS_FORMATS = ("text", "json")
# status shows what is stored, cheaply (it refreshes under --watch while runs are stored):
# no statistics, so no interval; the leaderboard has them, over its own classes
TEST_SETS_NOTE = (
    "point estimates, no intervals: mean over seeds of each run's stored mean AUC (over every "
    "class estimable on the test set), min and max over seeds; the leaderboard's mean AUC is "
    "over the classes its sparse-class rule keeps, with 95% CIs and tests: "
    "python -m mlbench leaderboard {out}")


def _retry_command(out: Path, run: dict | None, commands: list[dict],
                   retry: bool = True) -> str:
    """``python -m mlbench run SUITE --out OUT [--set K=V]... --retry-failed [--only ...]``,
    with the suite file and overrides of the latest ``run`` that selected the run (without
    ``retry``: that command as it was, which resumes it)."""
    entry = command_for(commands, run["id"] if run is not None else None) or {}
    parts = ["python", "-m", "mlbench", "run", entry.get("suite") or "SUITE", "--out", str(out)]
    for item in entry.get("overrides", ()):
        parts += ["--set", item]
    if not retry:
        return shlex.join(parts)
    parts.append("--retry-failed")
    if run is not None:
        for key in ("backbone", "head", "loss", "seed"):
            parts += ["--only", f"{key}={run[key]}"]
    return shlex.join(parts)


def _retry_all(out: Path, failed: list[dict], commands: list[dict]) -> list[str]:
    """One command per ``run`` invocation that selected failed runs (each reruns all of its
    failed runs)."""
    seen, out_cmds = set(), []
    for r in failed:
        entry = command_for(commands, r["id"])
        key = id(entry)
        if key in seen:
            continue
        seen.add(key)
        out_cmds.append(_retry_command(out, None, [entry] if entry else []))
    return out_cmds


def _train_seconds(db, runs: list[dict]) -> dict:
    """Each finished run's stored ``train_seconds`` (its epochs, no worker start-up)."""
    ids = {r["id"] for r in runs if r["status"] == "finished"}
    return {m["run_id"]: float(m["value"]) for m in (db.metrics() if ids else ())
            if m["name"] == "train_seconds" and not m["finding"] and m["run_id"] in ids
            and m["value"] is not None}


def _duration(run: dict) -> float | None:
    if run.get("started") and run.get("finished") and run["finished"] >= run["started"]:
        return float(run["finished"] - run["started"])
    return None


def collect(out: str | Path, now: float | None = None) -> dict:
    """The status of the suite in ``out`` as a JSON-able dict.

    Keys: ``out``, ``suite``, ``time``; ``counts`` (per status, and ``total``); ``setups``
    (per backbone/head: counts per status); ``running`` (id, axes, ``worker``, ``device``,
    ``gpu``, ``epochs_done``, ``epochs``, ``elapsed_s``, ``eta_s``, ``stale``: its lease ran
    out); ``failed`` (id, axes, ``error`` (first line), ``failed_step``, ``attempts``,
    ``retry``: the command); ``mean_run_s`` (mean training time of the finished runs),
    ``eta_s`` (the suite's remaining time, None when no run has finished yet) and
    ``retry_failed`` (commands that rerun every failed run: one per ``run`` invocation that
    selected some, with its suite file and overrides); ``test_sets`` (per test set: ``name``,
    ``finished``, ``scored``, ``images``, ``patients``, ``notes``, ``losses``: ``backbone``,
    ``head``, ``loss``, ``seeds``, ``mean_auc``, ``min``, ``max``) and ``test_sets_note``
    (those are point estimates; the leaderboard has the intervals).

    Raises:
        FileNotFoundError: no results.db; sqlite3.DatabaseError: not an mlbench database.
    """
    out = Path(out)
    now = time.time() if now is None else now
    with ResultsDB(out, readonly=True) as db:
        runs = db.runs()
        suite = db.get_meta("suite")
        trained = _train_seconds(db, runs)
        test_sets = _test_sets(db, runs)
    commands = read_commands(out)

    counts = dict.fromkeys(STATUSES, 0)
    setups: dict[tuple, dict] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        s = setups.setdefault((r["backbone"], r["head"]), {
            "backbone": r["backbone"], "head": r["head"], **dict.fromkeys(STATUSES, 0)})
        s[r["status"]] += 1
    for s in setups.values():
        s["total"] = sum(s[k] for k in STATUSES)
    counts["total"] = len(runs)

    durations = [d for r in runs if r["status"] == "finished"
                 and (d := trained.get(r["id"], _duration(r))) is not None]
    mean = sum(durations) / len(durations) if durations else None

    running = []
    for r in runs:
        if r["status"] != "running":
            continue
        info = summarize(read_run_log(run_log_path(out, r["id"])))
        elapsed = max(0.0, now - r["started"]) if r.get("started") else None
        done = None if info["epoch"] is None else int(info["epoch"]) + 1
        epochs = info["epochs"] or (r["config"].get("train", {}).get("epochs"))
        eta = None
        if mean is not None and done and epochs:  # the epochs left of a mean run
            eta = mean * max(0.0, 1 - done / epochs)
        elif mean is not None:  # no epoch done yet: its training is all ahead of it
            eta = mean
        elif done and epochs and elapsed is not None:  # no finished run yet: its own pace
            eta = elapsed / done * max(0, epochs - done)
        lease = r.get("lease_until")
        # its driver is gone: a lease run out, or (as the driver judges) a pid of this host
        # that no longer exists; the next `run` gives it back, so it has no ETA
        gone = same_host(r.get("worker")) and not worker_alive(r.get("worker"))
        stale = gone or bool(lease is not None and lease < now)
        running.append({
            "id": r["id"], "backbone": r["backbone"], "head": r["head"], "loss": r["loss"],
            "seed": r["seed"], "worker": info["worker"] or r.get("worker"),
            "driver": r.get("worker"), "device": info["device"] or r.get("device"),
            "gpu": info["gpu"], "epochs_done": done or 0, "epochs": epochs,
            "elapsed_s": _round(elapsed), "eta_s": None if stale else _round(eta),
            "attempts": r.get("attempts"), "stale": stale,
            "interrupted": (f"driver {r.get('worker')} is gone" if gone else
                            "lease expired" if stale else None),
            "resume": _retry_command(out, r, commands, retry=False) if stale else None,
        })

    failed = [{
        "id": r["id"], "backbone": r["backbone"], "head": r["head"], "loss": r["loss"],
        "seed": r["seed"], "error": first_line(r.get("error")) or "(no error recorded)",
        "failed_step": r.get("failed_step"), "attempts": r.get("attempts"),
        "retry": _retry_command(out, r, commands),
    } for r in runs if r["status"] == "failed"]

    eta_total = None
    if mean is not None:
        live = [x for x in running if not x["stale"]]  # an interrupted run is as if pending
        left = sum(x["eta_s"] or 0.0 for x in live) + (counts["pending"] + len(running)
                                                       - len(live)) * mean
        eta_total = left / max(1, len(live))
    elif not running and not counts["pending"]:
        eta_total = 0.0
    return {
        "out": str(out), "suite": suite, "time": round(now, 3), "counts": counts,
        "setups": [setups[k] for k in sorted(setups)], "running": running, "failed": failed,
        "mean_run_s": _round(mean), "eta_s": _round(eta_total),
        "retry_failed": _retry_all(out, [r for r in runs if r["status"] == "failed"],
                                   commands),
        "test_sets": test_sets, "test_sets_note": TEST_SETS_NOTE.format(out=shlex.quote(str(out))),
    }


def _test_sets(db, runs: list[dict]) -> list[dict]:
    """Per test set (``nih``: the runs' own test split, then ``eval.test_sets``' others):
    its finished runs scored (the others wait for the next ``run``), and per setup and loss
    the mean over seeds of the stored mean AUC with the seeds and their range. The
    leaderboard has the statistics (CIs and tests over seeds x patients)."""
    finished = {r["id"]: r for r in runs if r["status"] == "finished"}
    scored = db.scored_test_sets()
    names = list(dict.fromkeys(["nih", *(db.get_meta("test_sets") or []), *scored]))
    own = [m for m in db.metrics() if m["name"] == "mean_auc" and not m["finding"]]
    out = []
    for name in names:
        rows = own if name == "nih" else [m for m in db.test_set_metrics(name)
                                          if m["name"] == "mean_auc" and not m["finding"]]
        by: dict[tuple, list] = {}
        for m in rows:
            r = finished.get(m["run_id"])
            if r is not None and m["value"] is not None:
                by.setdefault((r["backbone"], r["head"], r["loss"]), []).append(m["value"])
        info = (db.get_meta("test_set_info") or {}).get(name) or next(
            (db.test_set_result(rid, name)["info"] for rid in sorted(scored.get(name, ()))), {})
        out.append({
            "name": name, "finished": len(finished),
            "scored": len({m["run_id"] for m in rows if m["run_id"] in finished}),
            "images": info.get("images"), "patients": info.get("patients"),
            "notes": info.get("notes", []),
            "losses": [{"backbone": k[0], "head": k[1], "loss": k[2], "seeds": len(v),
                        "mean_auc": round(sum(v) / len(v), 4), "min": round(min(v), 4),
                        "max": round(max(v), 4)} for k, v in by.items()]})
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


def fmt_seconds(s: float | None) -> str:
    """``3725`` -> ``1h02m``; ``75`` -> ``1m15s``; None -> ``?``."""
    if s is None:
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def render_text(st: dict) -> str:
    """The status screen."""
    from tabulate import tabulate

    c = st["counts"]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["time"]))
    lines = [f"suite {st['suite'] or '?'}  ({st['out']})  {stamp}",
             f"{c['total']} runs: {c['finished']} finished, {c['running']} running, "
             f"{c['pending']} pending, {c['failed']} failed   mean run "
             f"{fmt_seconds(st['mean_run_s'])}   ETA {fmt_seconds(st['eta_s'])}", ""]
    rows = [(s["backbone"], s["head"], s["finished"], s["running"], s["pending"], s["failed"],
             s["total"]) for s in st["setups"]]
    lines.append(tabulate(rows, headers=["backbone", "head", "finished", "running", "pending",
                                         "failed", "total"]))
    if st["running"]:
        lines += ["", "running:"]
        rows = [(r["id"], r["loss"], r["seed"], where(r), r["device"] or "-",
                 f"{r['epochs_done']}/{r['epochs'] or '?'}", fmt_seconds(r["elapsed_s"]),
                 f"- ({r['interrupted']})" if r["stale"] else fmt_seconds(r["eta_s"]))
                for r in st["running"]]
        lines.append(tabulate(rows, headers=["id", "loss", "seed", "worker", "device", "epoch",
                                             "elapsed", "ETA"]))
        stale = [r for r in st["running"] if r["stale"]]
        if stale:
            lines.append(f"{len(stale)} run(s) interrupted (their driver is gone, not "
                         f"running): run the same command again to resume them: "
                         f"{stale[-1]['resume']}")
    if len(st.get("test_sets") or []) > 1:
        lines += ["", "test sets (mean AUC, point estimates: see the note below):"]
        for t in st["test_sets"]:
            means = ", ".join(f"{x['loss']} {x['mean_auc']:.4f} ({x['seeds']} seed"
                              f"{'s' if x['seeds'] != 1 else ''}, range {x['min']:.4f}-"
                              f"{x['max']:.4f})" for x in t["losses"])
            lines.append(f"  {t['name']}: {t['scored']}/{t['finished']} finished runs scored"
                         + (f"; {means}" if means else ""))
        lines.append(f"  note: {st['test_sets_note']}")
    if st["failed"]:
        lines += ["", "failed:"]
        for r in st["failed"]:
            lines.append(f"  {r['id']}  {r['backbone']} / {r['head']} / {r['loss']} / seed "
                         f"{r['seed']}: {r['error']}")
            lines.append(f"    retry: {r['retry']}")
        for cmd in st["retry_failed"]:
            lines.append(f"all failed runs: {cmd}")
    return "\n".join(lines)


def render(st: dict, fmt: str, one_line: bool = False) -> str:
    """``st`` as text (the screen) or JSON (indented, or one line per update)."""
    if fmt == "json":
        return json.dumps(st, indent=None if one_line else 1)
    return render_text(st)
