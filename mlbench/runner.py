"""Runs a suite's runs through the engine and writes the records.

Flow of one ``run_suite`` call:
    register the runs in ``OUT/results.db`` (known ids keep their status) -> put back to
    pending the runs left ``running`` by a process that is gone -> make the data ready once
    (generate CXR14-sim if absent, build the prepared cache) -> N worker loops, each claiming
    pending runs atomically through the database until none is left.

One run: seeded (``mlbench.seeding.deterministic``) -> train/val/test datasets from the
prepared cache -> seeded loaders -> ``build_model`` -> ``losses.create_loss(spec,
stats=train stats)`` -> ``engine.fit`` (epoch curves logged as they come) -> ``evaluate`` on
the test split -> per-class AUC/AP, mean AUC, mAP, bootstrap CIs -> one transaction that
stores everything and marks the run finished. A run killed half-way stores nothing but its
epoch curves, and is redone from the start on the next call.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from mlbench.db import ResultsDB
from mlbench.suite import sim_root_problem


# ------------------------------------------------------------------ metrics -> records
def metric_records(targets: np.ndarray, scores: np.ndarray, findings, *, n_boot: int,
                   seed: int) -> list[tuple]:
    """Rows for ``ResultsDB.finish``: per-class auc/ap with CIs, mean_auc with CI, map.

    Args:
        targets: (N, C) test labels. scores: (N, C) test probabilities.
        findings: the C class names.
        n_boot: bootstrap replicates (0 or 1: no CIs).
        seed: seed of the bootstrap.
    """
    from mlbench.metrics import bootstrap_ci, evaluate_scores

    point = evaluate_scores(targets, scores)
    nan = float("nan")
    if n_boot >= 2:
        ci = bootstrap_ci(targets, scores, n_boot=n_boot, seed=seed)
    else:
        ci = {"auc_lo": [nan] * len(findings), "auc_hi": [nan] * len(findings),
              "mean_auc_lo": nan, "mean_auc_hi": nan}
    rows = [("mean_auc", "", point["mean_auc"], ci["mean_auc_lo"], ci["mean_auc_hi"]),
            ("map", "", point["mean_ap"], None, None)]
    for c, f in enumerate(findings):
        rows.append(("auc", f, point["auc"][c], ci["auc_lo"][c], ci["auc_hi"][c]))
        rows.append(("ap", f, point["ap"][c], None, None))
    return rows


# ------------------------------------------------------------------ data
def dataset_meta(ds_cfg: dict) -> dict:
    return {"kind": "sim" if ds_cfg["sim"] else "real", "root": ds_cfg["root"],
            "image_size": ds_cfg["image_size"], "sim": ds_cfg["sim"], "view": ds_cfg["view"]}


def prepare_data(ds_cfg: dict, progress: bool = True) -> None:
    """Generate CXR14-sim if the suite asks for it and it is absent; build the cache."""
    from mlbench.data import generate_sim, prepare_cache
    from mlbench.data.sim import SimFolderError, read_marker, sim_params

    root = Path(ds_cfg["root"])
    sim = ds_cfg["sim"]
    if sim:
        problem = sim_root_problem(ds_cfg)
        if problem:
            raise ValueError(problem)
        made = read_marker(root)
        if made is not None and made != sim_params(**sim):
            raise RuntimeError(
                f"{root} holds CXR14-sim made with {made}, but the suite asks for {sim}; "
                f"delete {root} or set dataset.root to another folder")
        try:  # locked: a second runner on the same folder waits, then finds it complete
            generate_sim(root, **sim, progress=progress)
        except SimFolderError as exc:
            raise ValueError(f"{exc} (dataset.root / dataset.sim)") from None
    cache_dir = ds_cfg.get("cache_dir")
    try:
        prepare_cache(root, ds_cfg["image_size"], progress=progress, workers=_cache_workers(),
                      cache_dir=cache_dir)
    except PermissionError as exc:
        where = "dataset.cache_dir" if cache_dir else f"{root} (dataset.root)"
        raise PermissionError(
            f"cannot write the prepared-image cache in {where}: {exc.strerror or exc}; set "
            "dataset.cache_dir to a writable folder (--set dataset.cache_dir=/path)") from exc
    # missing images, bad splits: one error now, not one failed run each
    for split, ds in _Data.open(ds_cfg).items():
        if len(ds) == 0:
            raise ValueError(
                f"the `{split}` split of {ds_cfg['root']} is empty (dataset.val_fraction="
                f"{ds_cfg['val_fraction']}, dataset.view={ds_cfg['view']}); every run needs "
                "train, val and test images: raise dataset.val_fraction or change dataset.view")


def _cache_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class _Data:
    """Datasets per (dataset config, normalisation), reused across the runs of a worker."""

    def __init__(self):
        self._cache: dict = {}

    @staticmethod
    def open(ds_cfg: dict, train_tf=None, eval_tf=None) -> dict:
        """The train/val/test splits of a suite's dataset (prepared cache)."""
        from mlbench.data import ChestXray14

        common = dict(val_fraction=ds_cfg["val_fraction"], seed=ds_cfg["split_seed"],
                      view=ds_cfg["view"], image_size=ds_cfg["image_size"],
                      missing=ds_cfg["missing"], workers=_cache_workers(),
                      cache_dir=ds_cfg.get("cache_dir"))
        return {
            "train": ChestXray14(ds_cfg["root"], "train", transform=train_tf, **common),
            "val": ChestXray14(ds_cfg["root"], "val", transform=eval_tf, **common),
            "test": ChestXray14(ds_cfg["root"], "test", transform=eval_tf, **common),
        }

    def get(self, ds_cfg: dict, train_cfg: dict, mean: float, std: float) -> dict:
        from mlbench.data import build_transforms

        key = (json.dumps(ds_cfg, sort_keys=True), train_cfg["augment"], mean, std)
        if key not in self._cache:
            size = ds_cfg["image_size"]
            train_tf = build_transforms(True, size, mean, std, augment=train_cfg["augment"])
            eval_tf = build_transforms(False, size, mean, std, augment=False)
            # keep one entry: runs come ordered by backbone
            self._cache = {key: self.open(ds_cfg, train_tf, eval_tf)}
        return self._cache[key]


# ------------------------------------------------------------------ one run
def _train_config(train_cfg: dict):
    from mlbench.engine import TrainConfig

    return TrainConfig.from_dict(train_cfg, ignore_unknown=True)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def execute(run: dict, db: ResultsDB, data: _Data, bar_position: int = 1,
            progress: bool = True) -> str:
    """Train and evaluate one claimed run; store its results. Returns its final status."""
    import tempfile

    import torch
    from torch.utils.data import DataLoader

    import losses
    from mlbench.data import FINDINGS
    from mlbench.engine import evaluate, fit
    from mlbench.models import build_model
    from mlbench.seeding import deterministic, loader_kwargs

    cfg = run["config"]
    seed = cfg["seed"]
    tcfg, mcfg, dcfg = cfg["train"], cfg["model"], cfg["dataset"]
    device = _device(tcfg["device"])
    with deterministic(seed):
        model = build_model(cfg["backbone"], cfg["head"], num_classes=len(FINDINGS),
                            pretrained=mcfg["pretrained"], in_chans=mcfg["in_chans"],
                            weights=mcfg["weights"], head_kwargs=mcfg["head_kwargs"] or None)
        sets = data.get(dcfg, tcfg, model.norm_mean, model.norm_std)
        loss_fn = losses.create_loss(cfg["loss"], stats=sets["train"].stats())
        workers = tcfg["num_workers"]
        extra = {"persistent_workers": True} if workers > 0 else {}
        train_loader = DataLoader(sets["train"], batch_size=tcfg["batch_size"], shuffle=True,
                                  drop_last=len(sets["train"]) > tcfg["batch_size"],
                                  num_workers=workers, **loader_kwargs(seed), **extra)
        eval_kw = dict(batch_size=tcfg["eval_batch_size"], shuffle=False, num_workers=workers)
        val_loader = DataLoader(sets["val"], **eval_kw, **loader_kwargs(seed))
        test_loader = DataLoader(sets["test"], **eval_kw, **loader_kwargs(seed))

        def on_epoch_end(entry: dict) -> None:
            db.log_epoch(run["id"], entry.get("epoch", 0), entry)

        train_cfg = _train_config(tcfg)
        bar = _run_bar(run, train_loader, train_cfg, bar_position, progress)
        with tempfile.TemporaryDirectory(prefix=f"mlbench-{run['id']}-") as tmp:
            try:
                result = fit(model, loss_fn, _Counting(train_loader, bar), val_loader, train_cfg,
                             device=device, on_epoch_end=on_epoch_end,
                             checkpoint_path=Path(tmp) / "best.pt")
            finally:
                bar.close()
        if result.status != "finished":
            db.fail(run["id"], result.failure or "training failed", result.failed_step)
            return "failed"
        with torch.no_grad():
            out = evaluate(model, test_loader, device)
    records = metric_records(out["targets"], out["scores"], FINDINGS,
                             n_boot=cfg["eval"]["bootstrap"], seed=seed)
    db.finish(run["id"], records, out["scores"], out["targets"], epochs=result.history)
    return "finished"


class _Counting:
    """A loader that advances a progress bar per batch (``len`` and iteration pass through)."""

    def __init__(self, loader, bar):
        self.loader, self.bar = loader, bar

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield batch
            self.bar.update(1)


def _run_bar(run: dict, loader, train_cfg, position: int, progress: bool):
    from tqdm import tqdm

    per_epoch = len(loader)
    if train_cfg.max_steps_per_epoch is not None:
        per_epoch = min(per_epoch, train_cfg.max_steps_per_epoch)
    return tqdm(total=per_epoch * train_cfg.epochs, desc=f"{run['loss']} s{run['seed']}",
                unit="step", position=position, leave=False, disable=not progress,
                dynamic_ncols=True)


# ------------------------------------------------------------------ workers
def worker_loop(out_dir: str, ids: list[str], progress: bool = True, position: int = 0,
                threads: int | None = None) -> dict:
    """Claim and execute pending runs among ``ids`` until none is left.

    Returns:
        ``{"finished": n, "failed": n}`` done by this loop.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    done = {"finished": 0, "failed": 0}
    data = _Data()
    with ResultsDB(out_dir) as db:
        while True:
            run = db.claim(ids)
            if run is None:
                return done
            if progress:
                from tqdm import tqdm

                tqdm.write(f"[{run['id']}] {run['backbone']} / {run['head']} / {run['loss']} "
                           f"/ seed {run['seed']}")
            try:
                status = execute(run, db, data, bar_position=position + 1, progress=progress)
            except KeyboardInterrupt:  # give the run back at once (a rerun would anyway)
                db.release(run["id"], "interrupted (Ctrl-C)")
                raise
            except Exception as exc:  # a broken run is recorded, the others go on
                db.fail(run["id"], f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                status = "failed"
                if progress:
                    from tqdm import tqdm

                    tqdm.write(f"[{run['id']}] failed: {type(exc).__name__}: {exc}")
            done[status] += 1


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to this worker when its parent process dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker finishes its current run
        pass


def _spawned_worker(out_dir: str, ids: list[str], position: int, threads: int | None) -> None:
    _die_with_parent()
    worker_loop(out_dir, ids, progress=False, position=position, threads=threads)


def run_suite(suite, runs, *, workers: int = 1, progress: bool = True,
              retry_failed: bool = False) -> dict:
    """Run ``runs`` of ``suite`` (resumable); returns counts and the wall time.

    Args:
        suite: a loaded ``mlbench.suite.Suite``.
        runs: the runs to do (all of the suite's, or a ``--only`` selection).
        workers: worker processes; 1 runs in this process.
        progress: tqdm bars (overall, and per run from the engine).
        retry_failed: put failed runs among ``runs`` back to pending first.
    """
    from tqdm import tqdm

    from mlbench.data import FINDINGS

    t0 = time.perf_counter()
    if suite.config["train"]["device"] == "cuda" and _device("auto") != "cuda":
        raise ValueError("`train.device` is 'cuda' but torch sees no CUDA device here; "
                         "use --set train.device=auto (or cpu)")
    out = suite.output
    out.mkdir(parents=True, exist_ok=True)
    ids = [r.id for r in runs]
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
        db.set_meta("findings", list(FINDINGS))
        before = db.counts(ids)
    if before["pending"]:
        prepare_data(suite.dataset, progress)
    if progress:
        tqdm.write(f"{len(ids)} runs: {before['finished']} finished already, "
                   f"{before['pending']} to do, {before['failed']} failed")
    if workers <= 1:
        _run_with_bar(out, ids, before, progress, lambda: worker_loop(str(out), ids, progress))
    else:
        _run_parallel(out, ids, before, workers, progress)
    with ResultsDB(out) as db:
        after = db.counts(ids)
    return {**after, "seconds": time.perf_counter() - t0}


def _run_with_bar(out, ids, before, progress, body) -> None:
    """Run ``body`` while an overall bar follows the database (a thread polls it)."""
    import threading

    from tqdm import tqdm

    if not progress:
        body()
        return
    total = len(ids)
    bar = tqdm(total=total, initial=before["finished"] + before["failed"], desc="runs",
               unit="run", position=0, dynamic_ncols=True)
    stop = threading.Event()

    # On a terminal the bar redraws every second (elapsed time); in a log file each redraw
    # is a new line, so there it redraws only when the counts change.
    tty = sys.stderr.isatty()

    def poll() -> None:
        last = None
        with ResultsDB(out) as db:
            while not stop.wait(1.0):
                c = db.counts(ids)
                bar.n = c["finished"] + c["failed"]
                bar.set_postfix(failed=c["failed"], running=c["running"], refresh=False)
                state = (bar.n, c["running"])
                if tty or state != last:
                    bar.refresh()
                last = state

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        body()
    finally:
        stop.set()
        thread.join()
        with ResultsDB(out) as db:
            c = db.counts(ids)
        bar.n = c["finished"] + c["failed"]
        bar.set_postfix(failed=c["failed"], refresh=False)
        bar.close()


def _run_parallel(out, ids, before, workers: int, progress: bool) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_spawned_worker, args=(str(out), ids, i, threads), daemon=False)
             for i in range(workers)]

    def body() -> None:
        import signal

        def on_term(signum, frame):  # a terminated parent takes its workers with it
            raise SystemExit(128 + signum)

        try:
            previous = signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            _check_workers(out, procs)
        except BaseException:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    _run_with_bar(out, ids, before, progress, body)


class WorkerDied(RuntimeError):
    """A worker process ended with a non-zero exit code (crash, OOM killer, signal)."""


def _check_workers(out, procs) -> None:
    """Raise ``WorkerDied`` naming each joined worker that exited non-zero, after putting
    back to pending the runs it left ``running`` (``ResultsDB.reset_stale``)."""
    import signal
    import socket

    from mlbench.db import _worker_alive

    dead = [(i, p) for i, p in enumerate(procs) if p.exitcode != 0]
    if not dead:
        return
    names = {f"{socket.gethostname()}:{p.pid}" for _, p in dead}
    with ResultsDB(out) as db:
        reset = db.reset_stale(alive=lambda w: w not in names and _worker_alive(w))
    lines = []
    for i, p in dead:
        code = p.exitcode
        why = f"exit code {code}"
        if code is not None and code < 0:
            try:
                why += f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                pass
        lines.append(f"worker {i} (pid {p.pid}) died with {why}")
    back = (f"; its run(s) {', '.join(reset)} are pending again" if reset else "")
    raise WorkerDied("; ".join(lines) + back + ". Finished runs are kept in "
                     f"{Path(out) / 'results.db'}; run the same command again to resume")
