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
