"""ChestX-ray14 (or CXR14-sim) split as a torch Dataset.

Reads the release through ``mlbench.data.release`` (label table, split lists, image
index) and the pixels either from the PNGs or from the prepared cache
(``mlbench.data.cache``). CXR14-sim (``mlbench.data.sim``) writes the same layout
(``mlbench.layout``), so both go through this code.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mlbench.data.cache import load_or_prepare
from mlbench.data.release import (
    SPLITS,
    ReleaseTables,
    check_choice,
    check_root,
    decode_png,
    index_images,
    repair_hint,
)
from mlbench.layout import MISSING, VIEWS


def _missing_error(root: Path, missing: list[str], total: int) -> FileNotFoundError:
    fix = repair_hint(root, "Unpack all 12 archives of the NIH release")
    return FileNotFoundError(
        f"{len(missing)} of {total} listed image(s) not found under {root}/images/ or "
        f"{root}/images_*/images/, e.g. {missing[:5]}. {fix}; or leave them out: "
        "`dataset.missing: skip` in the suite (--set dataset.missing=skip; "
        "missing='skip' for ChestXray14)."
    )


def _all_missing_error(root: Path, split: str, total: int) -> FileNotFoundError:
    fix = repair_hint(root, "unpack the NIH archives into it")
    return FileNotFoundError(
        f"all {total} listed image(s) of the `{split}` split are missing under {root}/images/ "
        f"or {root}/images_*/images/, so leaving missing images out (dataset.missing: skip) "
        f"leaves the split empty; put the images back: {fix}"
    )


def _coverage(meta, present: np.ndarray) -> dict:
    """Listed vs present images and patients of a split (a partial release has fewer)."""
    pats = meta["patient"].to_numpy()
    return {"listed": int(len(meta)), "present": int(present.sum()),
            "patients_listed": int(len(np.unique(pats))),
            "patients_present": int(len(np.unique(pats[present])))}


class ChestXray14(torch.utils.data.Dataset):
    """ChestX-ray14 (or CXR14-sim) split as a torch Dataset.

    Args:
        root: dataset root in the NIH layout.
        split: "train" | "val" | "test" | "train_val"; val is carved out of the official
            train_val list by patient.
        val_fraction: fraction of train_val patients that go to "val".
        seed: seed of the train/val patient split.
        view: "all" | "PA" | "AP".
        image_size: None decodes the PNGs on every access (full size); an int reads the
            prepared cache at that size (built on first use, rebuilt when stale).
        transform: called on the uint8 (1, H, W) image tensor; None gives float32 in [0, 1].
        missing: "error" raises when listed images are absent; "skip" leaves them out
            (with a warning).
        cache_dir: where caches live (default ``ROOT/.mlbench_cache``).
        workers: decoding threads for a cache build.

    ``ds[i]`` is ``(image float32 (1, H, W), label float32 (14,))``. ``ds.coverage``: the
    split's listed and present images and patients; ``ds.coverage_note()`` states a
    restriction to the images present (None when all are).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        val_fraction: float = 0.1,
        seed: int = 0,
        view: str = "all",
        image_size: int | None = None,
        transform: Callable | None = None,
        missing: str = "error",
        cache_dir: str | os.PathLike | None = None,
        workers: int | None = None,
    ):
        check_choice("split", split, SPLITS)
        check_choice("view", view, VIEWS)
        check_choice("missing", missing, MISSING)
        self.root = check_root(root)
        self.split, self.image_size, self.transform = split, image_size, transform
        tables = ReleaseTables(self.root)
        keep = tables.split_mask(split, val_fraction, seed)
        if view != "all":
            keep = keep & (tables.meta.view == view).to_numpy()
        meta, labels = tables.meta[keep].reset_index(drop=True), tables.labels[keep]

        self._cache = None
        if image_size is not None:
            self._cache = load_or_prepare(
                self.root, image_size, cache_dir=cache_dir, workers=workers
            )
            present = meta.image.isin(self._cache.row.index).to_numpy()
        else:
            files = index_images(self.root)
            present = meta.image.isin(files.keys()).to_numpy()
        self.coverage = _coverage(meta, present)
        if not present.all():
            absent = meta.image[~present].tolist()
            if missing == "error":
                raise _missing_error(self.root, absent, len(meta))
            if not present.any():
                raise _all_missing_error(self.root, split, len(meta))
            warnings.warn(
                f"Skipping {len(absent)} missing image(s), e.g. {absent[:5]}: "
                + self.coverage_note(), stacklevel=2
            )
            meta, labels = meta[present].reset_index(drop=True), labels[present]
        self.metadata = meta.drop(columns="official")
        self.labels = np.ascontiguousarray(labels, dtype=np.float32)
        if self._cache is not None:
            self._rows = self._cache.row[meta.image].to_numpy()
        else:
            self._paths = [files[name] for name in meta.image]

    @classmethod
    def from_prepared(cls, cache: str | os.PathLike, split: str = "train", *,
                      val_fraction: float = 0.1, seed: int = 0, view: str = "all",
                      transform: Callable | None = None) -> ChestXray14:
        """A split read from a prepared cache folder alone (``prepare_cache``'s result):
        no dataset root, no PNG looked at, the arrays memory-mapped read-only. The same
        rows, order and labels as ``ChestXray14(root, split, image_size=...)``."""
        from mlbench.data.cache import open_prepared
        from mlbench.data.release import split_patients

        check_choice("split", split, SPLITS)
        check_choice("view", view, VIEWS)
        opened = open_prepared(cache)
        meta = opened.tables
        tv = (meta.official == "train_val").to_numpy()
        keep = ~tv if split == "test" else tv.copy()
        if split in ("train", "val"):  # over every listed row, as ReleaseTables.split_mask
            val = np.zeros(len(tv), bool)
            val[tv] = split_patients(meta.patient[tv], val_fraction, seed)
            keep = val if split == "val" else tv & ~val
        if view != "all":
            keep = keep & (meta.view == view).to_numpy()
        self = cls.__new__(cls)
        self.coverage = _coverage(meta[keep], (meta.row[keep] >= 0).to_numpy())
        keep = keep & (meta.row >= 0).to_numpy()  # images absent from the cache: left out
        self.root = Path(opened.meta.get("root", str(cache)))
        self.split, self.image_size, self.transform = split, opened.images.shape[-1], transform
        self._cache = opened
        self._rows = meta.row[keep].to_numpy()
        self.metadata = meta[keep].drop(columns=["official", "row"]).reset_index(drop=True)
        self.labels = np.ascontiguousarray(opened.labels[self._rows], dtype=np.float32)
        return self

    def coverage_note(self) -> str | None:
        """What the output states when the split holds fewer images than its list (a partial
        release, ``missing='skip'``): None when every listed image is present."""
        c = self.coverage
        if c["present"] == c["listed"]:
            return None
        lists = "official test_list.txt" if self.split == "test" else (
            f"`{self.split}` split of the official train_val_list.txt")
        return (f"the {lists} restricted to the {c['present']:,} of its {c['listed']:,} "
                f"listed images present ({c['patients_present']:,} of "
                f"{c['patients_listed']:,} patients): every number is over the images present")

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        """The uint8 (1, H, W) image of item ``i``, before the transform."""
        if self._cache is not None:
            arr = self._cache.image(self._rows[i])  # a copy, its chunk's checksum checked
        else:
            arr = decode_png(self._paths[i])
        return torch.from_numpy(arr)[None]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.image(i)
        img = self.transform(img) if self.transform is not None else img.float().div_(255.0)
        return img, torch.from_numpy(self.labels[i].copy())

    def class_counts(self) -> np.ndarray:
        """Positives per class in this split, int64 (14,)."""
        return self.labels.sum(axis=0).astype(np.int64)

    def stats(self) -> dict:
        """Dataset statistics for the loss factory (SPEC §3.4)."""
        return {"class_counts": self.class_counts(), "num_samples": len(self)}

    def no_finding(self) -> np.ndarray:
        """The "No Finding" label of each image, float32 (N,): 1 where the release's
        'Finding Labels' is "No Finding" (no finding of the 14: the release allows no other
        combination, ``release.parse_labels``), else 0. CXR14-sim writes its healthy films
        the same way (``mlbench.data.sim``)."""
        return (self.labels.sum(axis=1) == 0).astype(np.float32)


class WithNoFinding(torch.utils.data.Dataset):
    """A split with the "No Finding" label appended as a 15th target (``model.no_finding``):
    ``ds[i]`` is ``(image, label float32 (15,))``, ``stats()`` counts it as a class. The
    metrics leave it out (the harness scores the 14 findings only)."""

    def __init__(self, base: ChestXray14):
        self.base = base
        self.labels = np.concatenate([base.labels, base.no_finding()[:, None]], axis=1)
        self.metadata = base.metadata

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, _ = self.base[i]
        return img, torch.from_numpy(self.labels[i].copy())

    def stats(self) -> dict:
        return {"class_counts": self.labels.sum(axis=0).astype(np.int64),
                "num_samples": len(self)}
