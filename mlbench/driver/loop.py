"""The driver: the only writer of ``OUT/results.db``.

Flow of one ``run_suite`` call:
    register the runs (known ids keep their status) -> put back to pending the runs whose
    holder is gone (its lease ran out, or its process on this host is dead) -> make the data
    ready once (generate CXR14-sim if absent, build the prepared cache) -> start an executor
    (``mlbench.driver.executors``: in this process, local worker processes, Ray tasks, Slurm jobs)
    -> loop: claim pending runs while the executor has free slots and hand them over; store
    each ``RunResult`` as it comes back (one transaction per run); renew the leases of the
    runs in flight from a heartbeat thread.

The driver survives its own restart: a killed driver leaves its runs ``running`` with a
dead pid (or, seen from another host, a lease that runs out); the next ``run`` puts them
back to pending and hands them out again, and each resumes from its last checkpoint
(``CHECKPOINTS/<run id>/last.pt``). Results are stored only by the driver, once per run.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

from mlbench.db import DB_NAME, LEASE_S, ResultsDB, check_results_db
from mlbench.driver.executors import Executor
from mlbench.driver.executors.base import WorkerDied
from mlbench.driver.plan import make_plan, resolve
from mlbench.driver.prepare import dataset_meta, prepare_data
from mlbench.driver.testsets import check_test_sets, score_test_sets, store_strata
from mlbench.driver.worker import fault_spec
from mlbench.logs import DriverLog, current_level, make_tracker
from mlbench.signals import sigterm_as_exit

log = logging.getLogger("mlbench.driver")

def run_suite(suite, runs, *, workers: int | None = None, progress: bool = True,
              retry_failed: bool = False, executor: str | Executor | None = None,
              gpus: str | list | None = None, **cluster) -> dict:
    """Run ``runs`` of ``suite`` (resumable); returns counts and the wall time.

    Args:
        suite: a loaded ``mlbench.suite.Suite``.
        runs: the runs to do (all of the suite's, or a ``--only`` selection).
        workers: local worker processes (default: one per GPU, else the suite's `workers`).
        progress: tqdm bars (overall, and per run when runs train in this process).
        retry_failed: put failed runs among ``runs`` back to pending first.
        executor: "local" | "ray" | "slurm" (default: the suite's ``cluster.executor``), or
            an ``Executor`` instance.
        gpus: GPU ids for the local executor ("0,1" or a list; default every visible GPU).
        cluster: other execution options by their suite key (``mlbench.execution.OPTIONS``,
            e.g. ``ray_address``, ``time_min``, ``keep_checkpoints``), overriding the
            suite's ``cluster`` section; None: not given.

    Raises:
        ValueError: bad options or data set-up (one line). WorkerDied: a local worker
        process died (its run is pending again; rerun to resume).
    """
    from tqdm import tqdm

    from mlbench.data import FINDINGS

    t0 = time.perf_counter()
    opts = resolve(suite, executor=executor, workers=workers, gpus=gpus, **cluster)
    _refuse_unguarded(opts)  # at once, not after the data are prepared
    check_test_sets(suite)  # a test set misnamed costs nothing
    out = suite.output
    check_results_db(out / DB_NAME)  # a damaged results.db is refused untouched
    _match_path_ids(out, runs)
    ids = [r.id for r in runs]
    # the data first: a set-up that fails (missing images, a bad table) leaves no pending
    # runs behind, nor a results.db
    cache = prepare_data(suite.dataset, progress) if _needs_data(out, ids, retry_failed) \
        else None
    out.mkdir(parents=True, exist_ok=True)
    with ResultsDB(out) as db:
        db.add_runs(runs)
        reset = db.reset_stale()
        if reset and progress:
            tqdm.write(f"restarting {len(reset)} interrupted run(s): {', '.join(reset)}")
        if retry_failed:
            db.retry_failed(ids)
        db.set_meta("suite", suite.name)
        db.set_meta("dataset", dataset_meta(suite.dataset))
        db.set_meta("reference", suite.config["eval"]["reference"])
        db.set_meta("analysis", suite.config.get("analysis") or {})
        db.set_meta("seeds", suite.seeds.to_json())  # every cell's: the leaderboard's complete
        db.set_meta("findings", list(FINDINGS))
        before = db.counts(ids)
    # running now: held by another live driver (stale ones were reset above); waited for, and
    # taken over if that driver dies, so this call ends with every run stored
    todo = before["pending"] + before["running"]
    if todo and cache is None:  # to do only now (a reset above)
        cache = prepare_data(suite.dataset, progress)
    # a driver that will train claims its cores first, then the plan is made with them
    plan = make_plan(suite, opts, claim=bool(todo))
    ex = plan.executor
    try:
        if progress:
            held = f", {before['running']} held by another driver" if before["running"] else ""
            tqdm.write(f"{len(ids)} runs: {before['finished']} finished already, "
                       f"{before['pending']} to do{held}, {before['failed']} failed"
                       + (f"; {ex.describe()}" if todo else ""))
            if plan.note:
                tqdm.write(f"note: {plan.note}")
        if todo:
            checkpoints = Path(opts.common.checkpoint_dir or out / "checkpoints")
            _remove_orphans(out, checkpoints, ex.name, progress)
            tracker = make_tracker(suite, out, checkpoints)  # None unless `tracking` is on
            Driver(out, ids, ex, checkpoints, tracker=tracker,
                   keep=opts.common.keep_checkpoints, progress=progress, before=before,
                   cache=cache).run()
    finally:
        if plan.claim is not None:
            plan.claim.release()
    # every finished run on every named test set not stored yet (no training)
    score_test_sets(suite, out, ids, Path(opts.common.checkpoint_dir or out / "checkpoints"),
                    progress)
    store_strata(out, ids)  # what the leaderboard's strata read instead of recomputing them
    with ResultsDB(out) as db:
        after = db.counts(ids)
    # to_do: the runs there were to train (pending or running when it started)
    return {**after, "seconds": time.perf_counter() - t0, "to_do": todo}


def _match_path_ids(out: Path, runs: list) -> None:
    """A results.db made before run ids left out the dataset's path (issue 24) stores a real
    dataset's runs under their path-based ids: such a run keeps its stored id, so finished
    runs are not trained again and a pending one resumes its checkpoint."""
    from mlbench.suite import path_run_id

    path = Path(out) / DB_NAME
    if not path.is_file():
        return
    try:
        with ResultsDB(path, readonly=True) as db:
            stored = {r["id"] for r in db.runs()}
    except sqlite3.DatabaseError:
        return  # empty or damaged: the steps below say so
    for run in runs:
        if run.id not in stored:
            old = path_run_id(run.config)
            if old in stored:
                run.id = old


def _refuse_unguarded(opts) -> None:
    """Local worker processes (spawned: each runs ``__main__`` again) asked for from the top
    level of a script without an ``if __name__ == "__main__":`` guard: ``UnguardedScript``
    before anything is prepared (the executor would say it only when it starts)."""
    from mlbench.driver.cores import cpu_cores
    from mlbench.driver.executors.local import UnguardedScript, main_guard_problem
    from mlbench.execution import LocalOptions

    local = opts.executor
    if opts.given is not None or not isinstance(local, LocalOptions):
        return
    if local.gpus is None and min(local.workers, max(1, cpu_cores() // opts.threads)) <= 1:
        return  # one worker: runs in this process, nothing is spawned
    problem = main_guard_problem()
    if problem:
        raise UnguardedScript(problem)


def _remove_orphans(out: Path, checkpoints: Path, executor: str, progress: bool) -> None:
    """Delete the temporaries (``NAME.tmp-<pid>``) that killed processes left in OUT and the
    checkpoint folder; said in one line. Other hosts' (Ray, Slurm) are spared while fresh."""
    from mlbench.files import remove_orphans

    age = 0.0 if executor in ("inline", "local") else 2 * LEASE_S
    gone = remove_orphans(out, recursive=False, min_age_s=age) \
        + remove_orphans(out / "logs", min_age_s=age) + remove_orphans(checkpoints, min_age_s=age)
    if gone:
        names = ", ".join(str(p) for p in gone[:3]) + (" ..." if len(gone) > 3 else "")
        log.warning(f"removed {len(gone)} temporary file(s) left by killed processes: {names}")


def _needs_data(out: Path, ids: list[str], retry_failed: bool) -> bool:
    """Whether some of ``ids`` will train: new, pending, running (perhaps stale), or failed
    with ``retry_failed``. Reads an existing results.db without writing to it."""
    path = Path(out) / DB_NAME
    if not path.is_file():
        return bool(ids)
    try:
        with ResultsDB(path, readonly=True) as db:
            status = {r["id"]: r["status"] for r in db.runs()}
    except sqlite3.DatabaseError as exc:
        if "no runs table" in str(exc):  # empty: another driver is creating it right now
            return bool(ids)
        raise
    todo = {"pending", "running"} | ({"failed"} if retry_failed else set())
    return any(status.get(i, "pending") in todo for i in ids)


class DiskFull(RuntimeError):
    """A run met a full disk: its run and those not started are pending; one line says
    which disk and the fix."""


class Driver:
    """Claims runs, hands them to ``executor``, stores what comes back.

    Args:
        out: output folder (results.db).
        ids: the runs to do.
        executor: where they run.
        checkpoint_dir: ``<run id>/last.pt`` and ``best.pt`` go there.
        keep: what stays of a stored run's checkpoints: "none", "best" (best.pt) or "all".
        progress: an overall bar (and per-run bars for runs in this process).
        lease_s: lease of a claimed run, renewed every ``lease_s / 10`` by a heartbeat.
        tracker: ``mlbench.logs.Tracker`` fed each run once stored (or None).

    Each run's events go to ``OUT/logs/<run id>.jsonl`` (``mlbench.logs.DriverLog``); the
    overall bar shows, per worker, the run it computes and its epoch (read from those files).
        cache: the prepared cache folder the workers open by itself (``prepare_data``).
    """

    def __init__(self, out, ids: list[str], executor: Executor, checkpoint_dir, *,
                 keep: str = "best", progress: bool = True, lease_s: float = LEASE_S,
                 tracker=None, before: dict | None = None, cache: str | None = None):
        self.out, self.ids, self.ex = Path(out), list(ids), executor
        self.checkpoint_dir, self.keep, self.progress = Path(checkpoint_dir), keep, progress
        self.lease_s = lease_s
        self.poll_s = 1.0  # how often to look at runs held by another driver
        self.before, self.cache = before, cache
        self.in_flight: dict[str, dict] = {}
        self.lost: set[str] = set()
        self.tracker = tracker
        self.runlog = DriverLog(self.out)
        self._failed = (before or {}).get("failed", 0)
        self.no_space: str | None = None  # a full disk met by a run: claim no more
        self.fault = fault_spec()  # tests' fault injection ($MLBENCH_FAULT), in every task

    # ------------------------------------------------------------ loop
    def run(self) -> None:
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True,
                                name="mlbench-lease-heartbeat")
        bar = self._bar()
        if bar is not None:  # runs in this process: redraw at each of their epochs
            self.runlog.on_change = lambda: self._update(bar, None)
        previous = _on_sigterm()
        db = ResultsDB(self.out)
        try:
            self.ex.start()
            beat.start()
            while True:
                while self.no_space is None and self.ex.free_slots() > 0:
                    run = db.claim([i for i in self.ids if i not in self.lost], self.lease_s)
                    if run is None:
                        break
                    self.in_flight[run["id"]] = run
                    self.runlog.claimed(run, self.ex.describe())
                    self.ex.submit(self._task(run))
                    self._say(f"[{run['id']}] {run['backbone']} / {run['head']} / "
                              f"{run['loss']} / seed {run['seed']}")
                if not self.in_flight:
                    if self._held_elsewhere(db):
                        continue
                    break
                for outcome in self.ex.wait(1.0):
                    self._store(db, outcome)
                self._update(bar, db)
            self.ex.close()
        except BaseException as exc:
            self.ex.abort()
            why = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
            for run_id in list(self.in_flight):
                try:
                    db.release(run_id, f"interrupted (driver stopped: {why})")
                    self.runlog.released(run_id, f"driver stopped: {why}")
                except RuntimeError:  # taken over meanwhile: not ours to give back
                    pass
            raise
        finally:
            stop.set()
            if beat.is_alive():
                beat.join()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if bar is not None:
                self._update(bar, db)
                bar.close()
            self.runlog.close()
            db.close()
        self._report_deaths()
        if self.no_space is not None:
            raise DiskFull(self.no_space)

    def _task(self, run: dict) -> dict:
        keys = ("id", "config", "backbone", "head", "loss", "seed")
        return {"run": {k: run[k] for k in keys}, "checkpoint_dir": str(self.checkpoint_dir),
                "cache": self.cache, "progress": self.progress and self.ex.name == "inline",
                "bar_position": 1, "log_dir": str(self.runlog.dir), "log_level": current_level(),
                "fault": self.fault}

    def _heartbeat(self, stop: threading.Event) -> None:
        try:
            with ResultsDB(self.out) as db:
                while not stop.wait(self.lease_s / 10):
                    try:
                        db.renew_leases(self.lease_s)
                    except sqlite3.Error:  # disk full, locked: the main loop reports it
                        pass
        except sqlite3.Error:
            pass

    def _held_elsewhere(self, db: ResultsDB) -> bool:
        """Whether runs of ours are held by another driver that is alive (same results.db):
        then wait for them, say so once, and put back to pending any whose holder died
        meanwhile (claimed next). False when none is left."""
        held = [r for r in db.runs("running")
                if r["id"] in set(self.ids) - self.lost and r["id"] not in self.in_flight]
        if not held:
            return False
        if not getattr(self, "_told", False):
            who = sorted({r["worker"] or "?" for r in held})
            log.warning(f"waiting for {len(held)} run(s) held by another driver "
                        f"({', '.join(who)}) on {self.out / 'results.db'}; they are "
                        "stored there when done (Ctrl-C stops waiting, their runs stay "
                        "theirs)")
            self._told = True
        time.sleep(self.poll_s)
        db.reset_stale()
        return True

    # ------------------------------------------------------------ results
    def _store(self, db: ResultsDB, outcome) -> None:
        run_id = outcome.run_id
        self.in_flight.pop(run_id, None)
        if outcome.kind == "lost":
            self.lost.add(run_id)
            db.release(run_id, f"interrupted ({outcome.detail})")
            self.runlog.released(run_id, outcome.detail)
            return
        res = outcome.result
        if res.status == "pending":  # a full disk: given back, the others are not started
            self.lost.add(run_id)
            self.no_space = self.no_space or res.error
            try:
                db.release(run_id, f"interrupted ({res.error})")
            except RuntimeError:
                pass
            self.runlog.released(run_id, res.error or "given back")
            self._say(f"[{run_id}] pending again: {res.error}")
            return
        try:
            if res.resumed_from is not None:
                db.event(run_id, "resumed", f"from the checkpoint of epoch {res.resumed_from}")
            if res.status == "finished":
                db.finish(run_id, list(res.records) + res.run_records(), res.scores,
                          res.targets, epochs=res.history, device=res.device or None,
                          image_ids=res.image_ids, patient_ids=res.patient_ids)
            else:
                for row in res.history:
                    db.log_epoch(run_id, row.get("epoch", 0), row)
                db.fail(run_id, res.error or "failed", res.failed_step, device=res.device or None)
                first = (res.error or "").strip().splitlines()[:1] or ["failed"]
                self._say(f"[{run_id}] failed: {first[0]}")
        except RuntimeError as exc:  # no longer ours (lease expired, another driver took it)
            self._say(f"[{run_id}] result not stored: {exc}")
            self.runlog.forget(run_id)
            return
        self.runlog.stored(run_id, res)
        if self.tracker:  # before pruning: best.pt goes to the tracker
            self.tracker.after_store(db, run_id)
        if not (res.error or "").startswith("CheckpointError"):  # a refused one is left to see
            self._prune(run_id)

    def _prune(self, run_id: str) -> None:
        """Apply ``keep`` to a stored run's checkpoints."""
        folder = self.checkpoint_dir / run_id
        if self.keep == "all" or not folder.is_dir():
            return
        if self.keep == "none":
            shutil.rmtree(folder, ignore_errors=True)
        else:
            (folder / "last.pt").unlink(missing_ok=True)

    def _report_deaths(self) -> None:
        deaths = self.ex.deaths()
        if not deaths:
            return
        lines = []
        for d in deaths:
            why = f"exit code {d.exitcode}"
            if d.exitcode is not None and d.exitcode < 0:
                try:
                    why += f" (killed by {signal.Signals(-d.exitcode).name})"
                except ValueError:
                    pass
            lines.append(f"worker {d.index} (pid {d.pid}) died with {why}")
        held = [d.run_id for d in deaths if d.run_id]
        back = f"; its run(s) {', '.join(held)} are pending again" if held else ""
        raise WorkerDied("; ".join(lines) + back + ". Finished runs are kept in "
                         f"{self.out / 'results.db'}; run the same command again to resume")

    # ------------------------------------------------------------ progress
    def _say(self, text: str) -> None:
        log.info(text)

    def _bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        b = self.before or {"finished": 0, "failed": 0}
        return tqdm(total=len(self.ids), initial=b["finished"] + b["failed"], desc="runs",
                    unit="run", position=0, dynamic_ncols=True)

    def _update(self, bar, db: ResultsDB | None) -> None:
        """Counts (from ``db``; None keeps them) and, per worker, its run and epoch."""
        if bar is None:
            return
        if db is not None:
            c = db.counts(self.ids)
            bar.n = c["finished"] + c["failed"]
            self._failed = c["failed"]
        workers = self.runlog.postfix()
        bar.set_postfix_str(f"failed={self._failed}, running={len(self.in_flight)}"
                            + (f" | {workers}" if workers else ""), refresh=False)
        bar.refresh()


def _on_sigterm():
    """A terminated driver stops like an interrupted one (its runs go back to pending)."""
    return sigterm_as_exit()

