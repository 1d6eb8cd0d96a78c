"""PadChest (Bustos et al. 2020, Hospital San Juan de Alicante) as a test set, read from its
release layout::

    ROOT/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv(.gz)
    ROOT/<ImageDir>/<ImageID>.png     (the BIMCV download: one folder per zip, 0 ... 54)
    or ROOT/<ImageID>.png, ROOT/images/<ImageID>.png (a flat copy, e.g. a resized one)

Its labels are the findings a report mentions as present (``Labels``, a list of terms, by a
physician for 27% of the reports, by a network trained on those for the rest:
``MethodLabel``); a finding not listed is negative, so no uncertain/blank policy applies.
The 14 NIH findings are matched to PadChest's terms one by one (``PADCHEST_TERMS``; exact
terms, not substrings: "pseudonodule" is not a nodule, "pericardial effusion" not a pleural
one, "subcutaneous emphysema" not emphysema).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mlbench.data.release import FINDINGS
from mlbench.data.testsets.base import (
    LabelMap,
    TestSet,
    check_choice,
    find_table,
    register_test_set,
    restrict_to_present,
)

PADCHEST_TABLE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
BUSTOS = ("Bustos et al., PadChest: a large chest x-ray image dataset with multi-label "
          "annotated reports, Medical Image Analysis 2020; https://bimcv.cipf.es/bimcv-"
          "projects/padchest/")
# NIH finding -> PadChest terms (every term of the 2019 table counted in docs/HARNESS.md);
# Infiltration's list is torchxrayvision's (PC_Dataset), the others follow the NIH names.
PADCHEST_TERMS: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectasis", "laminar atelectasis", "lobar atelectasis",
                    "segmental atelectasis", "atelectasis basal", "total atelectasis",
                    "round atelectasis"),
    "Cardiomegaly": ("cardiomegaly",),
    "Effusion": ("pleural effusion", "loculated pleural effusion",
                 "loculated fissural effusion", "hydropneumothorax"),
    "Infiltration": ("infiltrates", "interstitial pattern", "ground glass pattern",
                     "reticular interstitial pattern", "reticulonodular interstitial pattern",
                     "alveolar pattern", "consolidation", "air bronchogram"),
    "Mass": ("mass", "pulmonary mass", "mediastinal mass", "pleural mass"),
    "Nodule": ("nodule", "multiple nodules"),
    "Pneumonia": ("pneumonia", "atypical pneumonia"),
    "Pneumothorax": ("pneumothorax", "hydropneumothorax"),
    "Consolidation": ("consolidation", "air bronchogram"),
    "Edema": ("pulmonary edema",),
    "Emphysema": ("emphysema",),
    "Fibrosis": ("pulmonary fibrosis",),
    "Pleural_Thickening": ("pleural thickening", "apical pleural thickening",
                           "calcified pleural thickening"),
    "Hernia": ("hiatal hernia",),
}
PADCHEST_MAP = LabelMap(
    rules=tuple((f, (f,)) for f in FINDINGS),
    why=tuple((f, "PadChest terms: " + ", ".join(t)) for f, t in PADCHEST_TERMS.items()))
VIEWS = {"PA": "PA", "AP": "AP", "AP_horizontal": "AP", "L": "LATERAL", "COSTAL": "COSTAL"}


def parse_terms(cell) -> list[str]:
    """A ``Labels`` cell ("['pleural effusion', 'cardiomegaly']") -> its non-empty terms;
    a cell without a list (blank, or "nan" as the 2019 table writes a null) -> []."""
    if not isinstance(cell, str) or not cell.strip().startswith("["):
        return []
    return [t.strip() for t in ast.literal_eval(cell) if str(t).strip()]


def _index(root: Path, dirs) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in [root / str(x) for x in sorted(set(dirs))] + [root, root / "images"]:
        if d.is_dir():
            with os.scandir(d) as it:
                for e in it:
                    if e.name.endswith(".png") and e.name not in found:
                        found[e.name] = Path(e.path)
    return found


@register_test_set("padchest", kind="external",
                   description="PadChest (Alicante): report-derived labels of the 14 NIH "
                               "findings, frontal films")
def padchest(root, *, views=("PA", "AP"), labelled_by: str = "any", missing: str = "error",
             table=None) -> TestSet:
    """PadChest as a test set of the 14 NIH findings.

    Args:
        root: the PadChest folder (label table + image folders).
        views: kept views: "PA", "AP" (AP_horizontal, the supine AP, counts as AP),
            "LATERAL", "COSTAL".
        labelled_by: "any" or "physician" (only the reports a physician labelled).
        missing: "error" or "skip" (images of the table not under ``root``).
        table: the label table's path (default: found in ``root``).
    """
    check_choice("labelled_by", labelled_by, ("any", "physician"))
    root = Path(root)
    path = Path(table) if table else find_table(root, [PADCHEST_TABLE], "PadChest",
                                                "https://bimcv.cipf.es/bimcv-projects/padchest/")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, low_memory=False,
                      usecols=["ImageID", "ImageDir", "PatientID", "Projection", "MethodLabel",
                               "Labels"])
    terms = raw["Labels"].map(parse_terms)
    view = raw["Projection"].str.strip().map(VIEWS).fillna("UNKNOWN")
    keep = (terms.map(len) > 0) & view.isin(list(views))
    n_unlabelled = int((terms.map(len) == 0).sum())
    if labelled_by == "physician":
        keep &= raw["MethodLabel"].str.strip() == "Physician"
    raw, terms, view = raw[keep], terms[keep], view[keep]
    labels = np.zeros((len(raw), len(FINDINGS)), np.float32)
    for k, f in enumerate(FINDINGS):
        want = set(PADCHEST_TERMS[f])
        labels[:, k] = terms.map(lambda ts, want=want: any(t in want for t in ts)).to_numpy()
    found = _index(root, raw["ImageDir"].str.strip())
    images = raw["ImageID"].str.strip().to_numpy()
    paths = [found.get(im, root / d.strip() / im) for im, d in zip(images, raw["ImageDir"],
                                                                    strict=True)]
    present, note = restrict_to_present("padchest", root, paths, missing,
                                        "Unpack the PadChest zips into it (one folder each)")
    notes = [f"{n_unlabelled:,} images without any label term left out; views {list(views)}"
             + ("; physician-labelled reports only" if labelled_by == "physician" else "")]
    notes += [note] if note else []
    return TestSet(
        name="padchest", source=f"{path}; {BUSTOS}", label_map=PADCHEST_MAP,
        images=images[present], labels=labels[present],
        mask=np.ones((int(present.sum()), len(FINDINGS)), bool),
        patients=raw["PatientID"].str.strip().to_numpy()[present],
        views=view.to_numpy()[present], population="padchest",
        policy="a finding listed in the report's labels is positive, one not listed negative "
               "(no uncertain labels in PadChest)",
        notes=notes, paths=[p for p, ok in zip(paths, present, strict=True) if ok])
