"""External test sets in their real folder layouts: PadChest and CheXpert fixtures written
from the real label tables shipped with torchxrayvision (a few rows, verbatim, and a tiny
image for each name); MIMIC-CXR-JPG, whose tables are not shipped, from a fixture in its
documented format (mimic-cxr-2.0.0-chexpert / -metadata / -split .csv.gz)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mlbench.data import FINDINGS
from mlbench.data.release import shipped_table
from mlbench.data.testsets import ImageFiles, LabelPolicy, create_test_set
from mlbench.data.testsets.chexpert import CHEXPERT_MAP

PADCHEST = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
# rows picked by their only label term (the first such image of the table)
SINGLE_TERMS = ("pseudonodule", "nodule", "pericardial effusion", "pleural effusion",
                "subcutaneous emphysema", "emphysema", "hiatal hernia", "hydropneumothorax",
                "pulmonary edema", "infiltrates", "normal")


def _png(path, rng, *, bits16=False, size=12):
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits16:  # PadChest's files are 16-bit greyscale
        Image.fromarray(rng.integers(0, 4096, (size, size)).astype(np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)


# --------------------------------------------------------------------------- PadChest


@pytest.fixture(scope="module")
def padchest_rows():
    path = shipped_table(PADCHEST + ".gz")
    t = pd.read_csv(path, dtype=str, keep_default_na=False,
                    usecols=["ImageID", "Projection", "MethodLabel", "Labels"])
    t = t.sort_values("ImageID")
    only = lambda term: t["Labels"] == f"['{term}']"
    picks = {term: t.index[only(term)][0] for term in SINGLE_TERMS}
    picks["lateral"] = t.index[(t["Projection"] == "L") & only("normal")][0]
    picks["supine"] = t.index[(t["Projection"] == "AP_horizontal") & only("normal")][0]
    picks["empty"] = t.index[only("")][0]
    picks["null"] = t.index[t["Labels"] == "nan"][0]
    picks["rnn"] = t.index[(t["MethodLabel"] == "RNN_model") & only("normal")
                           & (t["Projection"] == "PA")][0]
    want = set(picks.values())  # the whole rows of those, every column, verbatim
    full = pd.read_csv(path, dtype=str, keep_default_na=False,
                       skiprows=lambda i: i > 0 and i - 1 not in want)
    full.index = sorted(want)
    return full, picks


def _write_padchest(root, rows, rng, skip=()):
    root.mkdir(parents=True, exist_ok=True)
    rows.to_csv(root / PADCHEST, index=False)  # the real header and rows (verbatim strings)
    for im, d in zip(rows["ImageID"], rows["ImageDir"], strict=True):
        if im not in skip:
            _png(root / d / im, rng, bits16=True)


def test_padchest_layout_labels_views_patients(tmp_path, padchest_rows):
    table, picks = padchest_rows
    rows = table.loc[list(picks.values())]
    _write_padchest(tmp_path / "pc", rows, np.random.default_rng(0))
    ts = create_test_set("padchest", tmp_path / "pc")
    by = {im: i for i, im in enumerate(ts.images)}
    img = {k: table.loc[v, "ImageID"] for k, v in picks.items()}
    lab = lambda key, f: ts.labels[by[img[key]], FINDINGS.index(f)]
    assert lab("nodule", "Nodule") == 1 and lab("pseudonodule", "Nodule") == 0
    assert lab("pleural effusion", "Effusion") == 1 and lab("pericardial effusion", "Effusion") == 0
    assert lab("emphysema", "Emphysema") == 1 and lab("subcutaneous emphysema", "Emphysema") == 0
    assert lab("hiatal hernia", "Hernia") == 1 and lab("pulmonary edema", "Edema") == 1
    assert lab("hydropneumothorax", "Pneumothorax") == 1 and lab("hydropneumothorax", "Effusion") == 1
    assert lab("infiltrates", "Infiltration") == 1 and ts.labels[by[img["normal"]]].sum() == 0
    assert ts.mask.all() and ts.findings == FINDINGS and ts.population == "padchest"
    # frontal only by default; the supine AP counts as AP; unlabelled images left out
    assert img["lateral"] not in by and ts.views[by[img["supine"]]] == "AP"
    assert img["empty"] not in by and img["null"] not in by
    assert any("2 images without any label term" in n for n in ts.notes)
    np.testing.assert_array_equal(ts.patients, table.set_index("ImageID").loc[ts.images,
                                                                              "PatientID"])
    assert ts.paths[0] == tmp_path / "pc" / table.set_index("ImageID").loc[ts.images[0],
                                                                           "ImageDir"] / ts.images[0]
    with_lateral = create_test_set("padchest", tmp_path / "pc", views=("PA", "AP", "LATERAL"))
    assert img["lateral"] in set(with_lateral.images)
    physician = create_test_set("padchest", tmp_path / "pc", labelled_by="physician")
    assert img["rnn"] not in set(physician.images) and img["rnn"] in by


def test_padchest_flat_layout_and_missing_images(tmp_path, padchest_rows):
    table, picks = padchest_rows
    rows = table.loc[[picks["nodule"], picks["normal"], picks["emphysema"]]]
    root = tmp_path / "flat"
    root.mkdir()
    rows.to_csv(root / PADCHEST, index=False)
    with gzip.open(root / (PADCHEST + ".gz"), "wt") as f:  # the .gz is found as well
        rows.to_csv(f, index=False)
    (root / PADCHEST).unlink()
    rng = np.random.default_rng(1)
    for im in rows["ImageID"][:2]:
        _png(root / "images" / im, rng)  # a flat copy of 8-bit files
    with pytest.raises(FileNotFoundError, match=r"1 are not under .*missing='skip'"):
        create_test_set("padchest", root)
    ts = create_test_set("padchest", root, missing="skip")
    assert len(ts) == 2 and any("restricted to the 2 of 3 listed images" in n for n in ts.notes)
    with pytest.raises(FileNotFoundError, match="No PadChest label table"):
        create_test_set("padchest", tmp_path)


# --------------------------------------------------------------------------- CheXpert


@pytest.fixture(scope="module")
def chexpert_rows():
    t = pd.read_csv(shipped_table("chexpert_train.csv.gz"), dtype=str, keep_default_na=False)
    return t.iloc[:40]  # the first patients: frontal and lateral, 1 / 0 / -1 / blank


def _write_chexpert(root, rows, name="train.csv"):
    root.mkdir(parents=True, exist_ok=True)
    rows.to_csv(root / name, index=False)
    rng = np.random.default_rng(2)
    for p in rows["Path"]:
        path = root.joinpath(*p.split("/")[1:])  # "CheXpert-v1.0-small/train/..." under ROOT
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(path, "JPEG")


@pytest.mark.parametrize(("uncertain", "blank"), [("ignore", "zeros"), ("ones", "ignore"),
                                                  ("zeros", "zeros")])
def test_chexpert_train_with_each_policy(tmp_path, chexpert_rows, uncertain, blank):
    root = tmp_path / "CheXpert-v1.0-small"
    _write_chexpert(root, chexpert_rows)
    ts = create_test_set("chexpert", root, split="train", uncertain=uncertain, blank=blank)
    frontal = chexpert_rows[chexpert_rows["Frontal/Lateral"] == "Frontal"]
    assert len(ts) == len(frontal) < len(chexpert_rows)
    assert list(ts.images) == [p.split("/", 1)[1] for p in frontal["Path"]]
    assert all(p.is_file() for p in ts.paths)
    assert list(ts.patients) == frontal["Path"].str.extract(r"(patient\d+)")[0].tolist()
    assert set(ts.views) <= {"AP", "PA"}
    raw = frontal[list(ts.findings)].replace("", np.nan).astype(float).to_numpy()
    nf = frontal["No Finding"].replace("", np.nan).astype(float).to_numpy()
    want_l, want_k = LabelPolicy(uncertain, blank).apply(raw, nf)
    np.testing.assert_array_equal(ts.labels, want_l)
    np.testing.assert_array_equal(ts.mask, want_k)
    # the real rows hold every kind of value, so each policy is exercised
    assert (raw == -1).any() and np.isnan(raw).any() and (raw == 1).any() and (raw == 0).any()
    if uncertain == "ignore":
        assert not ts.mask[raw == -1].any()
    if blank == "ignore":
        assert not ts.mask[np.isnan(raw) & (nf != 1)[:, None]].any()
    assert ts.findings[4] == "Pleural Effusion" and dict(CHEXPERT_MAP.rules)[
        "Pleural Effusion"] == ("Effusion",)
    assert "uncertain (-1)" in ts.policy and "Irvin" in ts.source


def test_chexpert_valid_split_is_the_default(tmp_path, chexpert_rows):
    root = tmp_path / "CheXpert-v1.0"
    rows = chexpert_rows.iloc[:6].copy()
    for c in CHEXPERT_MAP.findings:  # valid.csv: radiologist labels, 0/1 only
        rows[c] = np.where(rows[c] == "1.0", "1.0", "0.0")
    rows["Path"] = rows["Path"].str.replace("CheXpert-v1.0-small/train", "CheXpert-v1.0/valid")
    _write_chexpert(root, rows, "valid.csv")
    ts = create_test_set("chexpert", root)
    assert ts.mask.all() and ts.images[0].startswith("valid/") and "radiologist" in ts.policy
    with pytest.raises(FileNotFoundError, match=r"train\.csv"):
        create_test_set("chexpert", root, split="train")
    with pytest.raises(ValueError, match="split"):
        create_test_set("chexpert", root, split="test")


# --------------------------------------------------------------------------- MIMIC-CXR

MIMIC_LABELS = ("Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,"
                "Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,"
                "Pneumonia,Pneumothorax,Support Devices").split(",")
MIMIC_META = ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,"
              "Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,"
              "ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning").split(",")


def _write_mimic(root):
    """Three patients, four studies, seven images (one lateral, one study without a label
    row), in the documented MIMIC-CXR-JPG 2.0.0 format."""
    studies = [  # subject, study, labels (Atelectasis, Cardiomegaly, ... in MIMIC_LABELS order)
        ("10000032", "50414267", {"Atelectasis": "1.0", "Pleural Effusion": "-1.0"}),
        ("10000032", "53189527", {"No Finding": "1.0"}),
        ("10000764", "57375967", {"Pneumothorax": "0.0", "Edema": "1.0", "Pneumonia": "-1.0"}),
    ]
    lab = pd.DataFrame([{"subject_id": s, "study_id": st,
                         **{c: v.get(c, "") for c in MIMIC_LABELS}} for s, st, v in studies])
    images = [  # dicom, subject, study, view, split
        ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", "50414267", "PA", "test"),
        ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "50414267", "LATERAL", "test"),
        ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "10000032", "53189527", "AP", "test"),
        ("68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "10000764", "57375967", "AP", "test"),
        ("096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "10000764", "57375967", "PA", "train"),
        ("8959e402-2175d68d-edba5a6c-520cf8de-b97e2c7c", "10000898", "50771383", "PA", "test"),
        ("ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c", "10000898", "50771383", "PA", "test"),
    ]
    meta = pd.DataFrame([dict(zip(MIMIC_META, [d, s, st, "CHEST (PA AND LAT)", v, "3056",
                                               "2544", "21800506", "213014.531", "", "", ""],
                                  strict=True)) for d, s, st, v, _ in images])
    split = pd.DataFrame([{"dicom_id": d, "study_id": st, "subject_id": s, "split": sp}
                          for d, s, st, _, sp in images])
    root.mkdir(parents=True)
    for name, frame in (("chexpert", lab), ("metadata", meta), ("split", split)):
        with gzip.open(root / f"mimic-cxr-2.0.0-{name}.csv.gz", "wt") as f:
            frame.to_csv(f, index=False)
    rng = np.random.default_rng(3)
    for d, s, st, _, _ in images:
        path = root / "files" / f"p{s[:2]}" / f"p{s}" / f"s{st}" / f"{d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(path, "JPEG")
    return images


def test_mimic_fixture_split_views_policy(tmp_path):
    _write_mimic(tmp_path / "mimic")
    ts = create_test_set("mimic-cxr", tmp_path / "mimic")
    # test split, frontal views, studies with a label row: 3 images
    assert [im.split("/")[-1][:8] for im in ts.images] == ["02aa804e", "2a2277a9", "68b5c4b1"]
    assert list(ts.patients) == ["10000032", "10000032", "10000764"]
    assert list(ts.views) == ["PA", "AP", "AP"] and all(p.is_file() for p in ts.paths)
    assert ts.images[0] == ("files/p10/p10000032/s50414267/"
                            "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg")
    f = {name: k for k, name in enumerate(ts.findings)}
    # study 1: Atelectasis 1, Pleural Effusion -1 (ignored), the rest blank (negative)
    assert ts.labels[0, f["Atelectasis"]] == 1 and not ts.mask[0, f["Pleural Effusion"]]
    assert ts.mask[0, f["Edema"]] and ts.labels[0, f["Edema"]] == 0
    assert ts.mask[1].all() and ts.labels[1].sum() == 0  # No Finding
    assert ts.labels[2, f["Edema"]] == 1 and not ts.mask[2, f["Pneumonia"]]
    assert any("2 images of studies without a label row" in n for n in ts.notes)
    ones = create_test_set("mimic-cxr", tmp_path / "mimic", uncertain="ones", blank="ignore")
    assert ones.labels[0, f["Pleural Effusion"]] == 1 and ones.mask[0, f["Pleural Effusion"]]
    assert not ones.mask[0, f["Edema"]] and ones.mask[1].all()  # blank unknown unless No Finding
    everything = create_test_set("mimic-cxr", tmp_path / "mimic", split="all",
                                 views=("PA", "AP", "LATERAL"))
    assert len(everything) == 5


def test_mimic_missing_files(tmp_path):
    images = _write_mimic(tmp_path / "m")
    d, s, st = images[0][:3]
    (tmp_path / "m" / "files" / f"p{s[:2]}" / f"p{s}" / f"s{st}" / f"{d}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="missing='skip'"):
        create_test_set("mimic-cxr", tmp_path / "m")
    assert len(create_test_set("mimic-cxr", tmp_path / "m", missing="skip")) == 2
    (tmp_path / "m" / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2\.0\.0-split\.csv"):
        create_test_set("mimic-cxr", tmp_path / "m")


# --------------------------------------------------------------------------- pixels


def test_image_files_decode_16bit_png_rgb_png_and_jpeg(tmp_path):
    rng = np.random.default_rng(4)
    _png(tmp_path / "a.png", rng, bits16=True, size=20)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(tmp_path / "c.jpg")
    ds = ImageFiles([tmp_path / n for n in ("a.png", "b.png", "c.jpg")], 16)
    for i in range(3):
        x, y = ds[i]
        assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
        assert y.shape == (14,) and not y.any()
    seen = []
    ImageFiles([tmp_path / "a.png"], 8, transform=lambda t: seen.append(t) or t.float())[0]
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (1, 8, 8)
