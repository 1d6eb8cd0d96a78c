"""MIMIC-CXR-JPG (Johnson et al. 2019, Beth Israel Deaconess) as a test set, read from its
PhysioNet layout (mimic-cxr-jpg/2.0.0)::

    ROOT/mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, 14 observations (CheXpert
                                           labeler: 1, 0, -1, blank), per study
    ROOT/mimic-cxr-2.0.0-negbio.csv.gz     the same columns from NegBio (labels="negbio")
    ROOT/mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ..., ViewPosition, ...
    ROOT/mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split
                                           (train / validate / test)
    ROOT/files/p10/p10000032/s50414267/<dicom_id>.jpg

The label policy and the map to the NIH findings are CheXpert's (``chexpert.py``: same
labeler, same observations). Patients are ``subject_id``; an image is a ``dicom_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlbench.data.testsets.base import (
    LabelPolicy,
    TestSet,
    check_choice,
    find_table,
    register_test_set,
    restrict_to_present,
)
from mlbench.data.testsets.chexpert import CHEXPERT_MAP, labeler_labels

JOHNSON = ("Johnson et al., MIMIC-CXR-JPG, a large publicly available database of labeled "
           "chest radiographs, arXiv:1901.07042 (2019); https://physionet.org/content/"
           "mimic-cxr-jpg/2.0.0/")
PREFIX = "mimic-cxr-2.0.0-"


def _read(root: Path, what: str) -> tuple[pd.DataFrame, Path]:
    path = find_table(root, [f"{PREFIX}{what}.csv"], "MIMIC-CXR-JPG", JOHNSON)
    return pd.read_csv(path, dtype=str, keep_default_na=False), path


@register_test_set("mimic-cxr", kind="external",
                   description="MIMIC-CXR-JPG (Boston): 7 of the 14 NIH findings, CheXpert "
                               "labeler labels, official test split")
def mimic_cxr(root, *, split: str = "test", labels: str = "chexpert",
              uncertain: str = "ignore", blank: str = "zeros", views=("PA", "AP"),
              missing: str = "error") -> TestSet:
    """MIMIC-CXR-JPG as a test set of 7 findings.

    Args:
        root: the mimic-cxr-jpg/2.0.0 folder.
        split: "test" (the official split file's test images, the default), "validate",
            "train" or "all" (no split file needed).
        labels: "chexpert" or "negbio" (which labeler's table).
        uncertain, blank: the :class:`LabelPolicy` (defaults: uncertain ignored, blank
            negative). views: kept ``ViewPosition`` values. missing: "error" or "skip".
    """
    check_choice("split", split, ("test", "validate", "train", "all"))
    check_choice("labels", labels, ("chexpert", "negbio"))
    policy = LabelPolicy(uncertain, blank)
    root = Path(root)
    lab, lab_path = _read(root, labels)
    meta, meta_path = _read(root, "metadata")
    read = [lab_path.name, meta_path.name]
    if split != "all":
        sp, sp_path = _read(root, "split")
        read.append(sp_path.name)
        meta = meta[meta["dicom_id"].isin(sp.loc[sp["split"].str.strip() == split, "dicom_id"])]
    meta = meta.assign(view=meta["ViewPosition"].str.strip().str.upper())
    meta = meta[meta["view"].isin(list(views))]
    joined = meta.merge(lab, on=["subject_id", "study_id"], how="left", indicator=True)
    unlabelled = int((joined["_merge"] == "left_only").sum())
    joined = joined[joined["_merge"] == "both"].reset_index(drop=True)
    values, known = labeler_labels(joined.replace("", np.nan), policy)
    sid, study, dicom = (joined[c].str.strip() for c in ("subject_id", "study_id", "dicom_id"))
    rel = [Path("files", f"p{s[:2]}", f"p{s}", f"s{st}", f"{d}.jpg")
           for s, st, d in zip(sid, study, dicom, strict=True)]
    paths = [root / r for r in rel]
    present, note = restrict_to_present("mimic-cxr", root, paths, missing,
                                        "Download the MIMIC-CXR-JPG files/ folder into it")
    notes = [f"split {split!r}, views {list(views)}, {labels} labels"]
    if unlabelled:
        notes.append(f"{unlabelled:,} images of studies without a label row left out")
    notes += [note] if note else []
    return TestSet(
        name="mimic-cxr", source=f"{', '.join(read)} in {root}; {JOHNSON}",
        label_map=CHEXPERT_MAP, images=np.array([r.as_posix() for r in rel])[present],
        labels=values[present], mask=known[present], patients=sid.to_numpy()[present],
        views=joined["view"].to_numpy()[present], population="mimic-cxr",
        policy=f"{labels} labeler: " + policy.describe(), notes=notes,
        paths=[p for p, ok in zip(paths, present, strict=True) if ok])
