"""The built-in test sets on the NIH official test split: ``nih`` (its own text-mined labels),
``nih-expert`` (Google's radiologist-adjudicated labels, Majkowska et al. 2020) and
``nih-bbox`` (the box-confirmed positives of BBox_List_2017). All three are rows of the NIH
``test`` split the model is already scored on (``TestSet.nih_rows``), restricted to the
images present (a partial release: ``missing='skip'``, stated in the notes); the expert and
box tables ship inside torchxrayvision (``shipped_table``)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mlbench.data.release import FINDINGS, shipped_table
from mlbench.data.testsets.base import LabelMap, TestSet, check_choice, register_test_set

GOOGLE_TABLE = "google2019_nih-chest-xray-labels.csv.gz"
BBOX_TABLE = "BBox_List_2017.csv.gz"
WANG = ("Wang et al., ChestX-ray8, CVPR 2017; NIH Clinical Center, "
        "https://nihcc.app.box.com/v/ChestXray-NIHCC")
MAJKOWSKA = ("Majkowska et al., Chest radiograph interpretation with deep learning models: "
             "assessment with radiologist-adjudicated reference standards and population-"
             "adjusted evaluation, Radiology 2020;294:421-431")

EXPERT_MAP = LabelMap(
    rules=(("Pneumothorax", ("Pneumothorax",)),
           ("Nodule or mass", ("Nodule", "Mass")),
           ("Airspace opacity", ("Consolidation", "Pneumonia", "Edema", "Infiltration"))),
    why=(("Nodule or mass", "one expert label for both NIH findings: positive when either is"),
         ("Airspace opacity",
          "airspace opacification is the filling of the airspaces by fluid (edema), pus "
          "(pneumonia) or other material, radiologically the sign of consolidation "
          "(Radiopaedia, 'Air space opacification'); NIH's Infiltration is its vaguer "
          "text-mined term for a parenchymal opacity; Atelectasis is left out (an opacity "
          "from volume loss, not airspace filling)")),
    left_out=(("Fracture", "the NIH findings have no fracture output"),),
)
BBOX_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
                 "Pneumonia", "Pneumothorax")


def _nih_test(source, missing: str, view: str):
    """The NIH test split: a ChestXray14 (used as it is) or a dataset root."""
    if isinstance(source, str | os.PathLike):
        from mlbench.data.nih import ChestXray14

        check_choice("missing", missing, ("error", "skip"))
        return ChestXray14(source, "test", missing=missing, view=view)
    if not hasattr(source, "metadata") or not hasattr(source, "labels"):
        raise TypeError("Expected an NIH dataset root or a ChestXray14 test split, got "
                        f"{type(source).__name__}")
    return source


def _coverage_notes(ds) -> list[str]:
    note = getattr(ds, "coverage_note", None)
    text = note() if callable(note) else None
    return [text] if text else []


@register_test_set("nih", kind="nih",
                   description="the official test split, NIH labels (text-mined)")
def nih(source, *, missing: str = "error", view: str = "all") -> TestSet:
    """The official NIH test split with its own 14 labels (the default test set).

    Args:
        source: the NIH dataset root, or its ``ChestXray14(root, "test", ...)``.
        missing, view: as ``ChestXray14`` (used when ``source`` is a root).
    """
    ds = _nih_test(source, missing, view)
    meta = ds.metadata
    return TestSet(
        name="nih", source=f"NIH ChestX-ray14 official test_list.txt, 2020 labels ({WANG})",
        label_map=LabelMap.identity(), images=meta["image"].to_numpy(),
        labels=ds.labels, mask=np.ones(ds.labels.shape, bool),
        patients=meta["patient"].to_numpy(), views=meta["view"].to_numpy(), population="nih",
        policy="text-mined from the reports (Wang et al. 2017); every label known",
        notes=_coverage_notes(ds), nih_rows=np.arange(len(meta)))


def read_google_labels(path=None) -> pd.DataFrame:
    """Google's labels (``Set Id`` "test": the 1,962 of the official test list; "val": 2,414
    train_val images, not a test set): image, set, and the four findings as 1.0 / 0.0 / NaN."""
    path = path or shipped_table(GOOGLE_TABLE, needed_for="test set nih-expert")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = pd.DataFrame({"image": raw["Image Index"].str.strip(), "set": raw["Set Id"].str.strip()})
    for f in ("Pneumothorax", "Nodule or mass", "Airspace opacity", "Fracture"):
        v = raw[f].str.strip().str.upper()
        out[f] = np.where(v == "YES", 1.0, np.where(v == "NO", 0.0, np.nan))
    return out


@register_test_set("nih-expert", kind="nih",
                   description="google2019 radiologist-adjudicated labels of the official "
                               "test images (Pneumothorax, Nodule or mass, Airspace opacity)")
def nih_expert(source, *, missing: str = "error", view: str = "all",
               table=None) -> TestSet:
    """The official test images that Google's radiologists labelled (Majkowska et al. 2020):
    ``Set Id`` "test" of google2019_nih-chest-xray-labels (1,962 images, all on the official
    test list), restricted to the test images present; labels YES / NO, a blank masked.

    The label map (``EXPERT_MAP``): Pneumothorax <- Pneumothorax; Nodule or mass <-
    max(Nodule, Mass); Airspace opacity <- max(Consolidation, Pneumonia, Edema,
    Infiltration); Fracture is not scored (no NIH output).
    """
    ds = _nih_test(source, missing, view)
    g = read_google_labels(table)
    g = g[g["set"] == "test"].set_index("image")
    meta = ds.metadata
    rows = np.flatnonzero(meta["image"].isin(g.index).to_numpy())
    vals = g.loc[meta["image"].to_numpy()[rows], list(EXPERT_MAP.findings)].to_numpy()
    notes = _coverage_notes(ds) + [
        f"{len(rows):,} of the {len(g):,} expert-labelled official test images are in this "
        "test split" + ("" if len(rows) == len(g) else " (the others are absent here)")]
    return TestSet(
        name="nih-expert",
        source=f"{GOOGLE_TABLE} (shipped with torchxrayvision), Set Id 'test'; {MAJKOWSKA}",
        label_map=EXPERT_MAP, images=meta["image"].to_numpy()[rows],
        labels=np.nan_to_num(vals), mask=~np.isnan(vals),
        patients=meta["patient"].to_numpy()[rows], views=meta["view"].to_numpy()[rows],
        population="nih", policy="radiologist-adjudicated YES/NO (a blank would be masked)",
        notes=notes, nih_rows=rows)


def read_bbox(path=None) -> pd.DataFrame:
    """BBox_List_2017: (image, finding) pairs with a radiologist-drawn box (findings in NIH
    spelling: the table's "Infiltrate" is Infiltration)."""
    path = path or shipped_table(BBOX_TABLE, needed_for="test set nih-bbox")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    out = pd.DataFrame({"image": raw.iloc[:, 0].str.strip(),
                        "finding": raw.iloc[:, 1].str.strip().replace({"Infiltrate":
                                                                       "Infiltration"})})
    unknown = sorted(set(out["finding"]) - set(FINDINGS))
    if unknown:
        raise ValueError(f"{path}: unknown box finding(s) {unknown}")
    return out.drop_duplicates()


@register_test_set("nih-bbox", kind="nih",
                   description="box-confirmed positives of BBox_List_2017 against the test "
                               "images NIH labels negative, per finding (8 findings)")
def nih_bbox(source, *, missing: str = "error", view: str = "all", table=None) -> TestSet:
    """Per finding f of the 8 with boxes: positives are the test images with a box for f
    (BBox_List_2017: a radiologist drew it); negatives are the test images whose NIH label
    for f is 0 (text-mined negatives, no radiologist looked); a test image NIH-labelled
    positive for f without a box for f is masked for f (neither confirmed nor negative).
    Every image of the test split is a row. The boxes were drawn on a selection of ~1,000
    test images (Wang et al. 2017), so the positives are a selected subset of the NIH
    positives, not a random one."""
    ds = _nih_test(source, missing, view)
    meta = ds.metadata
    boxes = read_bbox(table)
    col = {f: FINDINGS.index(f) for f in BBOX_FINDINGS}
    boxed = np.zeros((len(meta), len(BBOX_FINDINGS)), bool)
    where = pd.Series(np.arange(len(meta)), index=meta["image"].to_numpy())
    here = boxes[boxes["image"].isin(where.index)]
    boxed[where[here["image"]].to_numpy(),
          [BBOX_FINDINGS.index(f) for f in here["finding"]]] = True
    nih_pos = ds.labels[:, [col[f] for f in BBOX_FINDINGS]] > 0
    n_img = here["image"].nunique()
    notes = _coverage_notes(ds) + [
        f"{n_img:,} of the {boxes['image'].nunique():,} images with boxes are in this test "
        "split; negatives are text-mined (NIH label 0), an NIH positive without a box is "
        "masked"]
    return TestSet(
        name="nih-bbox", source=f"{BBOX_TABLE} (shipped with torchxrayvision) against the NIH "
                                f"2020 labels of test_list.txt; {WANG}",
        label_map=LabelMap.identity(BBOX_FINDINGS), images=meta["image"].to_numpy(),
        labels=boxed.astype(np.float32), mask=boxed | ~nih_pos,
        patients=meta["patient"].to_numpy(), views=meta["view"].to_numpy(), population="nih",
        policy="positive: a radiologist-drawn box; negative: NIH label 0; NIH-positive "
               "without a box: masked",
        notes=notes, nih_rows=np.arange(len(meta)))
