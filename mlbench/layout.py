"""The NIH ChestX-ray14 release on disk: file names, download address, choices (torch-free).

One home for these facts: the suite checks (no torch) and ``mlbench.data`` both import them.

Layout (SPEC §3.1), exactly as the NIH box download unpacks::

    ROOT/Data_Entry_2017_v2020.csv  (or Data_Entry_2017.csv)
    ROOT/train_val_list.txt  ROOT/test_list.txt
    ROOT/images/*.png  or  ROOT/images_001/images/*.png ... ROOT/images_012/images/*.png

CXR14-sim writes the same layout plus ``SIM_MARKER``, the parameters it was made with.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Preferred first: the 2020 revision corrects labels of the 2017 file.
LABEL_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
SPLIT_FILES = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
NIH_URL = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
# The official test split (test_list.txt of the release): what SPEC §6's published results were
# measured on. sha256: of its image names, sorted, joined by "\n" (official_test_key).
OFFICIAL_TEST = {"images": 25_596, "patients": 2_797,
                 "sha256": "38ca5ef7f756092946f57c1a59faca882ed589a1ab1f72590b45dc06c6d5e1cc"}
VIEWS = ("all", "PA", "AP")
MISSING = ("error", "skip")
# Written by CXR14-sim before generation starts (so a killed generation is resumed, and a
# folder of other data is never taken for, or overwritten as, a simulated one).
SIM_MARKER = ".mlbench_sim.json"
# CXR14-sim's test-split knobs at their defaults (today's folders): the test split's share of
# the images and how strongly sick patients are preferred for it (``mlbench.data.sim``). A knob
# at its default is left out of the marker and of every run id.
SIM_KNOBS = {"test_fraction": 0.2, "sick_preference": 2.0}


def sim_knobs(**given) -> dict:
    """The knobs of ``given`` that differ from :data:`SIM_KNOBS` (None: the default), as
    floats: what a sim folder's marker and a run config hold of them."""
    return {k: float(v) for k, v in given.items()
            if k in SIM_KNOBS and v is not None and float(v) != SIM_KNOBS[k]}


def is_sim(root) -> bool:
    """Whether ``root`` is a CXR14-sim folder (it holds ``SIM_MARKER``): regenerated, never
    re-downloaded, when something in it is missing or broken."""
    return (Path(root) / SIM_MARKER).is_file()


def image_dirs(root) -> list[Path]:
    """The image folders of either layout: ``images/`` and ``images_*/images/``."""
    root = Path(root)
    return [root / "images"] + sorted(p / "images" for p in root.glob("images_*") if p.is_dir())


_FINGERPRINTS: dict = {}


def dataset_fingerprint(root) -> str | None:
    """What defines the data of a ChestX-ray14 folder, wherever it lives: SHA-256 of the label
    table's and the split lists' contents and of the names of the images present (a partial
    release is other data). None when ``root`` holds no label table or split lists (the
    caller falls back to the path). Remembered per process while the files are unchanged."""
    root = Path(root)
    files = [next((root / n for n in LABEL_FILES if (root / n).is_file()), None),
             *(root / n for n in SPLIT_FILES.values())]
    if files[0] is None:
        return None  # no label table
    try:
        stats = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        dirs = tuple((str(d), d.stat().st_mtime_ns) for d in image_dirs(root) if d.is_dir())
    except OSError:  # a split list missing
        return None
    key = (stats, dirs)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.name}\0".encode())
            with open(f, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        names = sorted({e.name for d in image_dirs(root) if d.is_dir()
                        for e in os.scandir(d) if e.name.endswith(".png")})
        h.update("\n".join(names).encode())
        _FINGERPRINTS[key] = h.hexdigest()[:20]
    return _FINGERPRINTS[key]


def is_official_test(image_ids) -> bool:
    """Whether ``image_ids`` are the official test split, every image of it (in any order):
    a split cut to the images present, to one view or to a sample is not."""
    if len(image_ids) != OFFICIAL_TEST["images"]:
        return False
    names = "\n".join(sorted(str(x) for x in image_ids))
    return hashlib.sha256(names.encode()).hexdigest() == OFFICIAL_TEST["sha256"]
