"""Helpers of the scale tests: a tiny suite on one shared CXR14-sim folder."""

from __future__ import annotations

import pytest

from mlbench.db import ResultsDB


def tiny(root, out, **train) -> dict:
    """A 2-run suite (bce, msml; seed 0) on CXR14-sim at ``root``, 16 px, test_resnet."""
    return {
        "name": "tiny",
        "dataset": {"root": str(root), "sim": {"images": 120, "size": 32, "seed": 0},
                    "image_size": 16, "val_fraction": 0.2},
        "grid": {"backbone": ["test_resnet"], "head": ["linear"], "loss": ["bce", "msml"]},
        "seeds": [0],
        "model": {"pretrained": False},
        "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, "lr": 1e-3,
                  "max_steps_per_epoch": 2, "augment": False, "device": "cpu", **train},
        "eval": {"bootstrap": 10, "reference": "bce"},
        "output": str(out),
    }


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory):
    """One CXR14-sim folder (and its prepared cache) for every scale test."""
    from mlbench.driver import prepare_data
    from mlbench.suite import load_suite

    root = tmp_path_factory.mktemp("scale") / "sim"
    suite = load_suite(tiny(root, root.parent / "unused"), env={})
    prepare_data(suite.dataset, progress=False)
    return root


def results(out) -> dict:
    """Everything a run stores, by run id, timings left out (they differ between attempts)."""
    with ResultsDB(out, readonly=True) as db:
        got = {}
        for run in db.runs():
            metrics = {(m["name"], m["finding"]): (m["value"], m["lo"], m["hi"])
                       for m in db.metrics(run["id"])
                       if m["name"] not in ("train_seconds", "train_images_per_s")}
            pred = db.predictions(run["id"])
            epochs = [{k: v for k, v in e.items()
                       if k not in ("train_time", "eval_time", "images_per_s")}
                      for e in db.epochs(run["id"])]
            got[run["id"]] = {"status": run["status"], "metrics": metrics, "epochs": epochs,
                              "scores": None if pred is None else pred[0].tobytes()}
    return got
