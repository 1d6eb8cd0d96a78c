"""Fixtures: small ChestX-ray14 folders written in the real NIH formats by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
LABEL_STRINGS = [
    "No Finding",
    "Effusion",
    "Cardiomegaly|Emphysema",
    "Infiltration|Mass|Nodule",
    "No Finding",
    "Hernia",
    "Atelectasis|Pneumothorax",
    "Pleural_Thickening|Fibrosis|Edema|Consolidation|Pneumonia",
]


def write_nih(
    root: Path,
    *,
    version: str = "2020",
    layout: str = "flat",
    patients: int = 12,
    size: int = 32,
    seed: int = 0,
    labels: list[str] | None = None,
) -> dict:
    """Write a tiny NIH-format dataset; return what was written (names, patients, strings).

    version "2017": Data_Entry_2017.csv with trailing commas and ages like 058Y;
    "2020": Data_Entry_2017_v2020.csv. layout "flat": images/; "split": images_00k/images/.
    Every 4th patient is in test_list.txt.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = labels or LABEL_STRINGS
    rows, names, pats, strings, tests = [], [], [], [], []
    k = 0
    for pid in range(1, patients + 1):
        for fu in range(1 + pid % 3):
            name = f"{pid:08d}_{fu:03d}.png"
            lab = labels[k % len(labels)]
            age = 20 + (k * 7) % 60
            age_s = f"{age:03d}Y" if version == "2017" else str(age)
            view = "PA" if k % 3 else "AP"
            sex = "M" if pid % 2 else "F"
            line = f"{name},{lab},{fu},{pid},{age_s},{sex},{view},2500,2048,0.168,0.168"
            rows.append(line + ("," if version == "2017" else ""))
            names.append(name)
            pats.append(pid)
            strings.append(lab)
            tests.append(pid % 4 == 0)
            sub = (
                root / "images" if layout == "flat" else root / f"images_{1 + k % 3:03d}" / "images"
            )
            sub.mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(img).save(sub / name)
            k += 1
    label_file = "Data_Entry_2017.csv" if version == "2017" else "Data_Entry_2017_v2020.csv"
    header = HEADER + ("," if version == "2017" else "")
    (root / label_file).write_text("\n".join([header, *rows]) + "\n")
    (root / "train_val_list.txt").write_text(
        "".join(n + "\n" for n, t in zip(names, tests, strict=True) if not t)
    )
    (root / "test_list.txt").write_text(
        "".join(n + "\n" for n, t in zip(names, tests, strict=True) if t)
    )
    return {"names": names, "patients": pats, "strings": strings, "label_file": root / label_file}


@pytest.fixture
def nih(tmp_path):
    """A 2020-format flat-layout fixture: (root, info)."""
    root = tmp_path / "nih"
    return root, write_nih(root)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# --------------------------------------------------------------------------- real tables
# Fixtures written from the real label tables shipped inside torchxrayvision (real image
# names, patients, labels); pixels are tiny random PNGs. Real films: ../shared/data.

REPO = Path(__file__).resolve().parents[2]


def shared_data(name: str) -> Path:
    """``../shared/data/NAME`` beside the repository (a git worktree elsewhere may point
    at the folder with $MLBENCH_SHARED_DATA); the path is returned even when absent."""
    import os

    here = REPO.parent / "shared" / "data" / name
    env = os.environ.get("MLBENCH_SHARED_DATA")
    return Path(env) / name if not here.exists() and env else here


# test patients: google2019 test images and boxes (457 ... 3400), google only (2758, 5476);
# train_val patients: google2019 "val" images (119, 135, 156) and one more (1)
REAL_TEST_PATIENTS = (457, 756, 830, 902, 1555, 1688, 3394, 3400, 2758, 5476)
REAL_TRAIN_PATIENTS = (1, 119, 135, 156)


def write_real_nih(root: Path, test=REAL_TEST_PATIENTS, train=REAL_TRAIN_PATIENTS,
                   size: int = 8) -> dict:
    """An NIH-layout folder whose rows are the real 2020 table's rows of these patients
    (verbatim), with the official split of them (every film of a test patient is on the
    official test list), and a tiny PNG per image."""
    import gzip

    from mlbench.data.release import shipped_table

    with gzip.open(shipped_table("Data_Entry_2017_v2020.csv.gz"), "rt") as f:
        header, *lines = f.read().splitlines()
    keep = set(test) | set(train)
    rows = [ln for ln in lines if int(ln.split(",")[3]) in keep]
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join([header, *rows]) + "\n")
    names = [ln.split(",")[0] for ln in rows]
    pats = [int(ln.split(",")[3]) for ln in rows]
    in_test = [p in set(test) for p in pats]
    (root / "test_list.txt").write_text("".join(n + "\n" for n, t in zip(names, in_test,
                                                                         strict=True) if t))
    (root / "train_val_list.txt").write_text(
        "".join(n + "\n" for n, t in zip(names, in_test, strict=True) if not t))
    (root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            root / "images" / n)
    return {"names": names, "patients": pats, "test": [n for n, t in zip(names, in_test,
                                                                         strict=True) if t]}
