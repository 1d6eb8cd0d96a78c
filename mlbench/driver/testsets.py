"""The named test sets of a suite (``eval.test_sets``): every finished run scored on each,
after training and without retraining, results stored per test set in ``results.db``.

* ``nih`` is the run's own test split (what ``worker`` scores and stores): nothing to do.
* The other NIH test sets (``nih-expert``, ``nih-bbox``: rows of the official test split)
  are scored from the run's stored test-split scores, which are ``best.pt``'s (``fit``
  restores the best weights before the test split is scored): the test set's images are
  found among the run's test images by name and its label map is applied.
* External test sets (PadChest, CheXpert, MIMIC-CXR: their own images) load the run's
  ``best.pt`` and score the test set's images, resized as the prepared cache does.

A (run, test set) pair already stored is not scored again, so adding a test set to a
finished suite's list and running it again scores the stored runs and trains nothing. The
test-set scoring is not part of any run id (the run config has no ``eval.test_sets``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from mlbench.db import ResultsDB

log = logging.getLogger("mlbench.driver")
OWN = "nih"  # the run's own test split: scored and stored by the worker


def entries(suite) -> list[dict]:
    """The suite's test sets other than its own split: ``{"name", **options}`` each."""
    return [dict(e) for e in suite.config["eval"].get("test_sets", [{"name": OWN}])
            if e["name"] != OWN]


def check_test_sets(suite) -> None:
    """Every listed name registered, an external one given its ``root``: before any
    training, so that a typo costs nothing.

    Raises:
        ValueError: one line naming the entry and the fix.
    """
    from mlbench.data.testsets import get_test_set_info, list_test_sets

    for e in entries(suite):
        try:
            info = get_test_set_info(e["name"])
        except ValueError:
            raise ValueError(f"eval.test_sets: unknown test set {e['name']!r}; registered: "
                             f"{list_test_sets()}") from None
        if info.kind == "external" and not e.get("root"):
            raise ValueError(f"eval.test_sets: {e['name']} reads its own release folder: give "
                             f"it as a mapping with its root, e.g. {{name: {e['name']}, root: "
                             "/data/...}")
        if info.kind == "external" and not Path(e["root"]).is_dir():
            raise ValueError(f"eval.test_sets: {e['name']}: no folder {e['root']} (its root); "
                             "fix the path or leave the test set out")
        if info.kind == "nih" and e.get("root"):
            raise ValueError(f"eval.test_sets: {e['name']} is made of the suite's own NIH test "
                             "images (dataset.root); it takes no root")


def build(entry: dict, ds_cfg: dict):
    """The test set of ``entry`` (a TestSet): an NIH one from the suite's dataset root (its
    test split restricted to the images present, said in its notes), an external one from
    its own root."""
    from mlbench.data.testsets import create_test_set, get_test_set_info

    options = {k: v for k, v in entry.items() if k not in ("name", "root")}
    if get_test_set_info(entry["name"]).kind == "nih":
        options.setdefault("view", ds_cfg["view"])
        options.setdefault("missing", "skip")  # the images the runs were tested on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the restriction is stated in the notes
            return create_test_set(entry["name"], ds_cfg["root"], **options)
    return create_test_set(entry["name"], entry["root"], **options)


def info_of(ts) -> dict:
    """What the output states about a test set."""
    return {"name": ts.name, "source": ts.source, "label_map": ts.label_map.describe(),
            "policy": ts.policy, "notes": list(ts.notes), "images": len(ts),
            "patients": int(len(np.unique(ts.patients))), "population": ts.population,
            "summary": ts.summary()}


def own_info(suite, out: str | Path) -> None:
    """Store what the output states about the runs' own test split (``nih``: its size, and
    its restriction to the images present when the release is partial) in meta
    ``test_set_info``; a dataset that does not build as an NIH test set (a sim folder
    without images yet) stores nothing."""
    from mlbench.data.testsets import create_test_set

    ds = suite.dataset
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = create_test_set(OWN, ds["root"], missing="skip", view=ds["view"])
    except Exception as exc:  # a statement, never a failure of the run
        log.debug(f"test set {OWN}: not described ({exc})")
        return
    with ResultsDB(out) as db:
        db.set_meta("test_set_info", {**(db.get_meta("test_set_info") or {}), OWN: info_of(ts)})


def score_nih(ts, scores: np.ndarray, image_ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows of ``ts`` kept, their (N, K) mapped scores, notes) from a run's (N_test, 14)
    test-split scores with rows named by ``image_ids``; test-set images not among them are
    left out, said in a note."""
    import pandas as pd

    pos = pd.Index([str(x) for x in image_ids]).get_indexer(ts.images)
    keep = np.flatnonzero(pos >= 0)
    notes = []
    if len(keep) < len(ts):
        notes.append(f"{len(ts) - len(keep):,} of the test set's {len(ts):,} images are not "
                     "among the run's test images and are left out")
    return keep, ts.label_map.apply(np.asarray(scores)[pos[keep]]), notes


def score_external(ts, run: dict, best: Path) -> np.ndarray:
    """(N, K) scores of an external test set's images by the run's ``best.pt``."""
    import torch
    from torch.utils.data import DataLoader

    from mlbench.data import FINDINGS, build_transforms
    from mlbench.models import build_model
    from mlbench.train import evaluate, load_checkpoint

    cfg = run["config"]
    if not best.is_file():
        raise FileNotFoundError(
            f"run {run['id']}: no {best} to score test set {ts.name} with (cluster."
            "keep_checkpoints none removed it, or the folder moved): rerun the run into a new "
            "folder, or pass --checkpoint-dir where its checkpoints are")
    m = cfg["model"]
    model = build_model(cfg["backbone"], cfg["head"], num_classes=len(FINDINGS),
                        pretrained=False, in_chans=m["in_chans"], weights=None,
                        head_kwargs=m["head_kwargs"] or None)
    load_checkpoint(best, model)
    size = cfg["dataset"]["image_size"]
    tf = build_transforms(False, size, model.norm_mean, model.norm_std, augment=False)
    loader = DataLoader(ts.dataset(size, tf), batch_size=cfg["train"]["eval_batch_size"],
                        shuffle=False, num_workers=0)
    with torch.no_grad():
        out = evaluate(model, loader, "cpu")
    return ts.label_map.apply(out["scores"])


def score_test_sets(suite, out: str | Path, ids: list[str], checkpoint_dir: str | Path,
                    progress: bool = True) -> dict[str, int]:
    """Score every finished run of ``ids`` on each test set of ``suite`` not stored yet.

    Returns:
        {test set name: runs scored now}.
    """
    from mlbench.stats import metric_records

    todo = entries(suite)
    done: dict[str, int] = {}
    own_info(suite, out)
    if not todo:
        return done
    with ResultsDB(out) as db:
        names = list(dict.fromkeys([*db.get_meta("test_sets", [OWN]), *(e["name"] for e in todo)]))
        db.set_meta("test_sets", names)
        runs = [r for r in (db.get_run(i) for i in ids) if r and r["status"] == "finished"]
        for entry in todo:
            name = entry["name"]
            scored = db.scored_test_sets().get(name, set())
            waiting = [r for r in runs if r["id"] not in scored]
            if not waiting:
                continue
            built: dict[str, object] = {}
            for run in waiting:
                dcfg = run["config"]["dataset"]
                key = f"{dcfg['root']}|{dcfg['view']}"
                if key not in built:
                    built[key] = build(entry, dcfg)
                    db.set_meta("test_set_info", {**(db.get_meta("test_set_info") or {}),
                                                  name: info_of(built[key])})
                ts = built[key]
                notes: list[str] = []
                if ts.nih_rows is not None:
                    pred, ids_ = db.predictions(run["id"]), db.test_ids(run["id"])
                    if pred is None or ids_ is None:
                        log.warning(f"run {run['id']}: no stored test scores or image ids "
                                    f"(older results.db): not scored on {name}")
                        continue
                    rows, scores, notes = score_nih(ts, pred[0], ids_[0])
                else:
                    from mlbench.driver.worker import checkpoint_paths

                    rows = np.arange(len(ts))
                    best = checkpoint_paths(checkpoint_dir, run["id"])["best"]
                    scores = score_external(ts, run, best)
                if len(rows) == 0:
                    log.warning(f"test set {name}: none of its images is in the test split of "
                                f"{dcfg['root']}: not scored")
                    break
                targets, mask = ts.labels[rows], ts.mask[rows]
                patients = ts.patients[rows]
                records = metric_records(targets, scores, ts.findings,
                                         n_boot=run["config"]["eval"]["bootstrap"],
                                         seed=run["config"]["seed"], groups=patients, mask=mask)
                info = info_of(ts)
                info["notes"] += notes
                db.store_test_set(run["id"], name, findings=ts.findings, records=records,
                                  scores=scores, targets=targets, mask=mask,
                                  image_ids=ts.images[rows], patient_ids=patients, info=info)
                done[name] = done.get(name, 0) + 1
            if progress and done.get(name):
                from tqdm import tqdm

                tqdm.write(f"test set {name}: {done[name]} run(s) scored (no training)")
        if done:
            _track(suite, out, db, checkpoint_dir, [r["id"] for r in runs])
    return done


def _track(suite, out, db, checkpoint_dir, ids: list[str]) -> None:
    """MLflow / TensorBoard (``tracking``): the runs logged again with their test sets."""
    from mlbench.logs import make_tracker

    tracker = make_tracker(suite, out, checkpoint_dir)
    for rid in ids if tracker else ():
        tracker.after_store(db, rid)


def store_strata(out: str | Path, ids: list[str]) -> int:
    """Each finished run of ``ids``: its stratum table (``mlbench.stats.strata.run_table``)
    on its own test split and on each named test set it was scored on, stored in
    ``results.db`` where none is stored for its current predictions and test ids (so the
    leaderboard reads them instead of recomputing them at every call; a run's table is
    cleared when it is claimed again). Returns how many tables were stored."""
    from mlbench.data import FINDINGS
    from mlbench.data.release import views_of
    from mlbench.stats.strata import pack_table, run_table, table_key

    stored = 0
    with ResultsDB(out) as db:
        scored = db.scored_test_sets()
        runs = [r for r in (db.get_run(i) for i in ids) if r and r["status"] == "finished"]
        for name in [OWN, *scored]:
            view = db if name == OWN else db.for_test_set(name)
            findings = list(view.get_meta("findings") or FINDINGS)
            for run in runs:
                digest = view.prediction_digest(run["id"])
                if digest is None:
                    continue
                key = table_key(digest)
                have = view.stored_strata(run["id"])
                if have is not None and have["key"] == key:
                    continue
                scores, targets = view.predictions(run["id"])
                test_ids = view.test_ids(run["id"])
                views, note = (None, "no test image ids stored: no view strata") \
                    if test_ids is None else views_of(run["config"]["dataset"]["root"], test_ids[0])
                names = [findings[c] if c < len(findings) else str(c)
                         for c in range(targets.shape[1])]
                table = run_table(targets, scores, views, names, view.prediction_mask(run["id"]))
                db.store_strata(run["id"], name, key, list(table), pack_table(table), note)
                stored += 1
    return stored
