"""Data preparation: the dataset made ready once, by the driver, before any run starts, and
the datasets a process opens for its runs.

:func:`prepare_data` generates CXR14-sim if the suite asks for it and it is absent, builds
the prepared cache, and opens each split once so that missing images or an empty split are
one error now, not one failed run each. :class:`Datasets` keeps a process's splits per
(dataset config, normalisation), reused by the runs a worker computes.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from mlbench.layout import is_sim
from mlbench.suite import sim_root_problem


def dataset_meta(ds_cfg: dict) -> dict:
    """The dataset as the results store's meta ``dataset`` describes it. Its kind comes from
    the data: a CXR14-sim folder (it holds ``SIM_MARKER``) is a sim wherever it is given,
    with or without ``dataset.sim`` (no published NIH rows beside phantom results)."""
    from mlbench.data.sim import read_marker

    sim = ds_cfg["sim"] or (read_marker(ds_cfg["root"]) if is_sim(ds_cfg["root"]) else None)
    return {"kind": "sim" if sim or is_sim(ds_cfg["root"]) else "real",
            "root": ds_cfg["root"], "image_size": ds_cfg["image_size"], "sim": sim,
            "view": ds_cfg["view"]}


def prepare_data(ds_cfg: dict, progress: bool = True) -> str:
    """Generate CXR14-sim if the suite asks for it and it is absent; build the cache (the
    driver, once). Returns the prepared cache folder, which workers open by itself
    (``ChestXray14.from_prepared``: no dataset root, no PNG looked at)."""
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
        try:  # locked: a second driver on the same folder waits, then finds it complete
            generate_sim(root, **sim, progress=progress)
        except SimFolderError as exc:
            raise ValueError(f"{exc} (dataset.root / dataset.sim)") from None
    cache_dir = ds_cfg.get("cache_dir")
    try:
        cache = prepare_cache(root, ds_cfg["image_size"], progress=progress,
                              workers=cache_workers(), cache_dir=cache_dir)
    except OSError as exc:  # no permission, or a read-only file system (EROFS)
        if not isinstance(exc, PermissionError) and exc.errno not in (errno.EROFS, errno.EACCES):
            raise
        where = "dataset.cache_dir" if cache_dir else f"{root} (dataset.root)"
        raise PermissionError(
            f"cannot write the prepared-image cache in {where}: {exc.strerror or exc}; set "
            "dataset.cache_dir to a writable folder (--set dataset.cache_dir=/path)") from exc
    # missing images, bad splits: one error now, not one failed run each
    for split, ds in Datasets.open(ds_cfg).items():
        if len(ds) == 0:
            raise ValueError(
                f"the `{split}` split of {ds_cfg['root']} is empty (dataset.val_fraction="
                f"{ds_cfg['val_fraction']}, dataset.view={ds_cfg['view']}); every run needs "
                "train, val and test images: raise dataset.val_fraction or change dataset.view")
    return str(cache)


def cache_workers() -> int:
    """Threads that decode images for the prepared cache: the CPUs, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


class Datasets:
    """Datasets per (dataset config, normalisation), reused across the runs of a process."""

    def __init__(self):
        self._cache: dict = {}

    @staticmethod
    def open(ds_cfg: dict, train_tf=None, eval_tf=None, cache: str | None = None) -> dict:
        """The train/val/test splits of a suite's dataset (prepared cache): from the cache
        folder ``cache`` alone when given, else from the dataset root."""
        from mlbench.data import ChestXray14

        if cache is not None:
            split = dict(val_fraction=ds_cfg["val_fraction"], seed=ds_cfg["split_seed"],
                         view=ds_cfg["view"])
            return {name: ChestXray14.from_prepared(cache, name, **split,
                                                    transform=train_tf if name == "train"
                                                    else eval_tf)
                    for name in ("train", "val", "test")}
        common = dict(val_fraction=ds_cfg["val_fraction"], seed=ds_cfg["split_seed"],
                      view=ds_cfg["view"], image_size=ds_cfg["image_size"],
                      missing=ds_cfg["missing"], workers=cache_workers(),
                      cache_dir=ds_cfg.get("cache_dir"))
        return {
            "train": ChestXray14(ds_cfg["root"], "train", transform=train_tf, **common),
            "val": ChestXray14(ds_cfg["root"], "val", transform=eval_tf, **common),
            "test": ChestXray14(ds_cfg["root"], "test", transform=eval_tf, **common),
        }

    def get(self, ds_cfg: dict, train_cfg: dict, mean: float, std: float,
            cache: str | None = None) -> dict:
        from mlbench.data import build_transforms

        key = (json.dumps(ds_cfg, sort_keys=True), json.dumps(train_cfg["augment"], sort_keys=True),
               mean, std, cache)  # augment: true | false | a mapping (not hashable)
        if key not in self._cache:
            size = ds_cfg["image_size"]
            train_tf = build_transforms(True, size, mean, std, augment=train_cfg["augment"])
            eval_tf = build_transforms(False, size, mean, std, augment=False)
            # keep one entry: runs come ordered by backbone
            self._cache = {key: self.open(ds_cfg, train_tf, eval_tf, cache)}
        return self._cache[key]
