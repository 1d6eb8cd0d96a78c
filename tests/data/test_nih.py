from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbench.data import FINDINGS, ChestXray14, DatasetError
from mlbench.data.release import parse_age, parse_findings, split_patients

from .conftest import write_nih


def test_findings_canonical_order():
    assert FINDINGS[0] == "Atelectasis" and FINDINGS[-1] == "Hernia" and len(FINDINGS) == 14
    assert FINDINGS.index("Pleural_Thickening") == 12


def test_parse_multilabel_and_no_finding():
    y = parse_findings(["No Finding", "Effusion|Mass", "Hernia | Atelectasis"])
    assert y.dtype == np.float32 and y.shape == (3, 14)
    assert y[0].sum() == 0
    assert np.flatnonzero(y[1]).tolist() == [FINDINGS.index("Effusion"), FINDINGS.index("Mass")]
    assert np.flatnonzero(y[2]).tolist() == [0, 13]


def test_parse_unknown_label_names_it_and_row():
    with pytest.raises(DatasetError, match=r"Unknown finding 'Pneumonitis'.*'b\.png'"):
        parse_findings(["Effusion", "Mass|Pneumonitis"], images=["a.png", "b.png"])


def test_parse_no_finding_with_finding_is_error():
    with pytest.raises(DatasetError, match="'No Finding' combined"):
        parse_findings(["No Finding|Mass"])


def test_parse_age_forms():
    assert parse_age(["058Y", "58", "024M", "010D", " 7 "]).tolist() == [58, 58, 2, 0, 7]
    with pytest.raises(DatasetError, match="Patient Age.*'58 years'"):
        parse_age(["58 years"], images=["x.png"])


@pytest.mark.parametrize("version", ["2017", "2020"])
@pytest.mark.parametrize("layout", ["flat", "split"])
def test_reads_both_label_files_and_layouts(tmp_path, version, layout):
    info = write_nih(tmp_path / "d", version=version, layout=layout)
    write_nih(tmp_path / "ref")  # same seed -> same pixels, 2020 flat
    splits = {s: ChestXray14(tmp_path / "d", s, seed=3) for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == len(info["names"])
    for s, ds in splits.items():
        other = ChestXray14(tmp_path / "ref", s, seed=3)
        assert ds.metadata.equals(other.metadata)
        np.testing.assert_array_equal(ds.labels, other.labels)
        x, y = ds[0]
        assert x.dtype == torch.float32 and x.shape == (1, 32, 32) and y.shape == (14,)
        assert torch.equal(x, other[0][0])
    meta = splits["train"].metadata
    assert list(meta.columns) == ["image", "patient", "view", "age", "sex"]
    assert meta.age.dtype == np.int64 and meta.patient.dtype == np.int64
    row = (
        pd.concat([d.metadata for d in splits.values()]).set_index("image").loc["00000001_000.png"]
    )
    assert (row.age, row.sex, row.view, row.patient) == (20, "M", "AP", 1)


def test_labels_follow_csv_strings(nih):
    root, info = nih
    ds = ChestXray14(root, "train_val")
    want = dict(zip(info["names"], parse_findings(info["strings"]), strict=True))
    for name, y in zip(ds.metadata.image, ds.labels, strict=True):
        np.testing.assert_array_equal(y, want[name])
    assert ds.class_counts().tolist() == ds.labels.sum(0).astype(int).tolist()
    assert ds.stats()["num_samples"] == len(ds)


def test_splits_patient_disjoint_and_cover_everything(nih):
    root, info = nih
    sets = {
        s: set(ChestXray14(root, s, val_fraction=0.3, seed=1).metadata.patient)
        for s in ("train", "val", "test")
    }
    assert (
        not sets["train"] & sets["val"]
        and not sets["train"] & sets["test"]
        and not sets["val"] & sets["test"]
    )
    assert sets["train"] | sets["val"] | sets["test"] == set(info["patients"])
    assert sets["test"] == {p for p in info["patients"] if p % 4 == 0}  # the official test list


def test_split_deterministic_per_seed(tmp_path):
    root = tmp_path / "d"
    write_nih(root, patients=40)
    a = ChestXray14(root, "val", val_fraction=0.25, seed=5).metadata.image.tolist()
    b = ChestXray14(root, "val", val_fraction=0.25, seed=5).metadata.image.tolist()
    c = ChestXray14(root, "val", val_fraction=0.25, seed=6).metadata.image.tolist()
    assert a == b and a != c
    assert len(ChestXray14(root, "val", val_fraction=0.0).metadata) == 0


@settings(max_examples=60, deadline=None)
@given(
    patients=st.lists(st.integers(0, 30), min_size=1, max_size=80),
    frac=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31),
)
def test_split_patients_property(patients, frac, seed):
    val = split_patients(patients, frac, seed)
    p = np.asarray(patients)
    assert not set(p[val]) & set(p[~val])  # no patient on both sides
    assert len(set(p[val])) == round(frac * len(set(patients)))
    np.testing.assert_array_equal(val, split_patients(list(reversed(patients)), frac, seed)[::-1])


def test_view_filter(nih):
    root, _ = nih
    pa = ChestXray14(root, "train_val", view="PA")
    ap = ChestXray14(root, "train_val", view="AP")
    assert set(pa.metadata.view) == {"PA"} and set(ap.metadata.view) == {"AP"}
    assert len(pa) + len(ap) == len(ChestXray14(root, "train_val"))


@pytest.mark.parametrize(
    ("arg", "value"),
    [("split", "validation"), ("view", "LL"), ("missing", "ignore"), ("val_fraction", 1.0)],
)
def test_bad_arguments(nih, arg, value):
    with pytest.raises(ValueError, match=arg):
        ChestXray14(nih[0], **{arg: value})


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*nihcc"):
        ChestXray14(tmp_path / "nowhere")


def test_missing_label_file(nih):
    root, info = nih
    info["label_file"].unlink()
    with pytest.raises(
        FileNotFoundError, match=r"Data_Entry_2017_v2020\.csv or Data_Entry_2017\.csv.*NIH"
    ):
        ChestXray14(root)


@pytest.mark.parametrize("name", ["train_val_list.txt", "test_list.txt"])
def test_missing_split_list(nih, name):
    root, _ = nih
    (root / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{name}.*NIH ChestX-ray14 release"):
        ChestXray14(root, "test")


def test_unknown_label_in_csv(nih):
    root, info = nih
    f = info["label_file"]
    f.write_text(f.read_text().replace("Hernia", "Hernia|Fracture", 1))
    with pytest.raises(DatasetError, match=r"Unknown finding 'Fracture'.*png"):
        ChestXray14(root)


def test_missing_columns(nih):
    root, info = nih
    f = info["label_file"]
    f.write_text(f.read_text().replace("Patient ID", "PatientID", 1))
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['Patient ID'\]"):
        ChestXray14(root)


def test_split_list_image_not_in_csv(nih):
    root, _ = nih
    with open(root / "test_list.txt", "a") as f:
        f.write("99999999_000.png\n")
    with pytest.raises(
        DatasetError, match=r"1 image\(s\) of test_list\.txt are not in .*99999999_000"
    ):
        ChestXray14(root)


def test_official_lists_sharing_patients(nih):
    root, info = nih
    moved = info["names"][0]  # patient 1 (train_val) gets one film in test
    tv = (root / "train_val_list.txt").read_text().replace(moved + "\n", "")
    (root / "train_val_list.txt").write_text(tv)
    with open(root / "test_list.txt", "a") as f:
        f.write(moved + "\n")
    with pytest.raises(DatasetError, match="patient-disjoint"):
        ChestXray14(root)


def test_missing_images_error_and_skip(nih):
    root, _ = nih
    ds = ChestXray14(root, "train_val")
    gone = ds.metadata.image[:3].tolist()
    for name in gone:
        (root / "images" / name).unlink()
    with pytest.raises(
        FileNotFoundError,
        match=rf"3 of {len(ds)} listed image\(s\) not found.*{gone[0]}.*missing='skip'",
    ):
        ChestXray14(root, "train_val")
    with pytest.warns(UserWarning, match="Skipping 3 missing"):
        skipped = ChestXray14(root, "train_val", missing="skip")
    assert len(skipped) == len(ds) - 3 and not set(gone) & set(skipped.metadata.image)
    np.testing.assert_array_equal(skipped.labels, ds.labels[3:])


def test_transform_receives_uint8(nih):
    seen = []
    ds = ChestXray14(nih[0], "test", transform=lambda x: seen.append(x) or x.float())
    ds[0]
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (1, 32, 32)
