"""CheXpert (Irvin et al. 2019, Stanford Hospital) as a test set, read from its release
layout (CheXpert-v1.0 or CheXpert-v1.0-small)::

    ROOT/train.csv  ROOT/valid.csv
    ROOT/train/patient00001/study1/view1_frontal.jpg ...  (``Path`` names them from the
    folder above ROOT: "CheXpert-v1.0-small/train/...")

``valid.csv`` (234 images of 200 patients) was labelled by 3 board-certified radiologists
(0/1 only); ``train.csv`` by the CheXpert labeler from the reports (1, 0, -1 uncertain, blank
not mentioned), so the :class:`LabelPolicy` applies. 7 of the 14 NIH findings have a
CheXpert observation (``CHEXPERT_MAP``); MIMIC-CXR (``mimic.py``) uses the same labeler and
map. Labels are per study: every image of a study has its study's labels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mlbench.data.testsets.base import (
    LabelMap,
    LabelPolicy,
    TestSet,
    check_choice,
    find_table,
    register_test_set,
    restrict_to_present,
)

IRVIN = ("Irvin et al., CheXpert: a large chest radiograph dataset with uncertainty labels "
         "and expert comparison, AAAI 2019; https://stanfordmlgroup.github.io/competitions/"
         "chexpert/")
CHEXPERT_MAP = LabelMap(
    rules=(("Atelectasis", ("Atelectasis",)), ("Cardiomegaly", ("Cardiomegaly",)),
           ("Consolidation", ("Consolidation",)), ("Edema", ("Edema",)),
           ("Pleural Effusion", ("Effusion",)), ("Pneumonia", ("Pneumonia",)),
           ("Pneumothorax", ("Pneumothorax",))),
    left_out=(
        ("Enlarged Cardiomediastinum", "no NIH output (Cardiomegaly is the heart alone)"),
        ("Lung Opacity", "no NIH output (any opacity: several NIH findings at once)"),
        ("Lung Lesion", "no NIH output (nodules and masses, but also other lesions)"),
        ("Pleural Other", "no NIH output (Pleural_Thickening is only part of it)"),
        ("Fracture", "no NIH output"), ("Support Devices", "no NIH output"),
        ("No Finding", "not a finding (it sets the blank findings negative)")),
)
_PATIENT = re.compile(r"(patient\d+)")


def labeler_labels(frame: pd.DataFrame, policy: LabelPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N, 7), known (N, 7)) of ``CHEXPERT_MAP``'s findings from a CheXpert-labeler
    table (columns named as CheXpert's; values 1, 0, -1 or blank)."""
    cols = list(CHEXPERT_MAP.findings)
    absent = [c for c in cols if c not in frame.columns]
    if absent:
        raise ValueError(f"the label table lacks column(s) {absent}; found {list(frame.columns)}")
    values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    no_finding = (pd.to_numeric(frame["No Finding"], errors="coerce").to_numpy()
                  if "No Finding" in frame.columns else None)
    return policy.apply(values, no_finding)


def _relative(path: str) -> Path:
    """``Path`` of the table, relative to ROOT: "CheXpert-v1.0-small/train/..." -> "train/..."."""
    parts = Path(path.strip()).parts
    return Path(*parts[1:]) if parts and parts[0].lower().startswith("chexpert") else Path(*parts)


@register_test_set("chexpert", kind="external",
                   description="CheXpert (Stanford): 7 of the 14 NIH findings; valid.csv "
                               "radiologist labels or train.csv labeler labels")
def chexpert(root, *, split: str = "valid", uncertain: str = "ignore", blank: str = "zeros",
             views=("PA", "AP"), missing: str = "error", table=None) -> TestSet:
    """CheXpert as a test set of 7 findings.

    Args:
        root: the CheXpert-v1.0(-small) folder.
        split: "valid" (radiologist labels, the default) or "train" (labeler labels).
        uncertain, blank: the :class:`LabelPolicy` (defaults: uncertain ignored, blank
            negative).
        views: kept views: "PA", "AP", "LATERAL" (frontal films by default: the model
            was trained on frontal NIH films).
        missing: "error" or "skip". table: the CSV (default ``ROOT/{split}.csv``).
    """
    check_choice("split", split, ("valid", "train"))
    policy = LabelPolicy(uncertain, blank)
    root = Path(root)
    path = Path(table) if table else find_table(root, [f"{split}.csv"], "CheXpert", IRVIN)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frontal = raw["Frontal/Lateral"].str.strip() == "Frontal"
    view = np.where(frontal, raw["AP/PA"].str.strip().str.upper(), "LATERAL")
    keep = np.isin(view, list(views))
    raw, view = raw[keep].reset_index(drop=True), view[keep]
    labels, known = labeler_labels(raw.replace("", np.nan), policy)
    rel = [_relative(p) for p in raw["Path"]]
    paths = [root / r for r in rel]
    present, note = restrict_to_present("chexpert", root, paths, missing,
                                        "Unpack CheXpert so that ROOT/train and ROOT/valid "
                                        "hold the patient folders")
    patients = raw["Path"].str.extract(_PATIENT, expand=False).fillna("").to_numpy()
    notes = [f"{path.name}; views {list(views)}"] + ([note] if note else [])
    return TestSet(
        name="chexpert", source=f"{path}; {IRVIN}", label_map=CHEXPERT_MAP,
        images=np.array([r.as_posix() for r in rel])[present], labels=labels[present],
        mask=known[present], patients=patients[present], views=view[present],
        population="chexpert",
        policy=("3-radiologist labels (0/1)" if split == "valid" else "CheXpert labeler: "
                + policy.describe()),
        notes=notes, paths=[p for p, ok in zip(paths, present, strict=True) if ok])
