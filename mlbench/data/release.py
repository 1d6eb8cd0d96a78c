"""The NIH ChestX-ray14 release files: label table, official split lists, image folders, PNGs.

Parsing only (no torch): ``ReleaseTables`` joins and checks the label table and the split
lists of one root, ``index_images`` finds the PNGs in either layout, ``decode_png`` reads
one. The dataset (``mlbench.data.nih``) and the prepared cache (``mlbench.data.cache``) are
both built on it. File names, URL and choices: ``mlbench.layout``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mlbench.layout import LABEL_FILES, NIH_URL, SIM_MARKER, SPLIT_FILES, image_dirs, is_sim

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
SPLITS = ("train", "val", "test", "train_val")
_COLUMNS = {
    "Image Index": "image",
    "Finding Labels": "findings",
    "Patient ID": "patient",
    "Patient Age": "age",
    "Patient Gender": "sex",
    "View Position": "view",
}
_AGE = re.compile(r"^\s*(\d+)\s*([YMDymd]?)\s*$")


class DatasetError(ValueError):
    """A ChestX-ray14 folder that cannot be read as it is (bad table, inconsistent lists)."""


def shipped_table(name: str, *, needed_for: str = "this") -> Path:
    """A label table shipped inside the installed ``torchxrayvision`` package (not imported:
    only its ``data/`` folder is read), e.g. ``Data_Entry_2017_v2020.csv.gz``,
    ``google2019_nih-chest-xray-labels.csv.gz``, ``BBox_List_2017.csv.gz``."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{needed_for} needs the `torchxrayvision` package for its label table {name} "
            "(pip install torchxrayvision)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the torchxrayvision install")
    return path


def _release_hint(what: str) -> str:
    return f"{what} is part of the NIH ChestX-ray14 release ({NIH_URL}); put it in the dataset root"


def check_choice(name: str, value, allowed) -> None:
    """A ``ValueError`` naming the argument, what is allowed and what was received."""
    if value not in allowed:
        raise ValueError(
            f"Expected argument `{name}` to be one of {list(allowed)} but got {value!r}"
        )


def find_label_file(root: str | os.PathLike) -> Path:
    """The label table in ``root``: the 2020 revision if present, else the 2017 file."""
    root = check_root(root)
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"No label file in {root}: expected {' or '.join(LABEL_FILES)}. "
        + _release_hint("Data_Entry_2017.csv (or its 2020 revision Data_Entry_2017_v2020.csv)")
    )


def check_root(root: str | os.PathLike) -> Path:
    """``root`` as a Path; ``FileNotFoundError`` (saying where the release comes from) when it
    is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"ChestX-ray14 root {root} does not exist or is not a folder. Download the NIH "
            f"release from {NIH_URL}, or generate CXR14-sim with `python -m mlbench data sim OUT`."
        )
    return root


def _where(images, row: int) -> str:
    return f"image {images[row]!r}" if images is not None else f"row {row}"


def parse_findings(strings, *, images=None) -> np.ndarray:
    """Multi-hot labels from ``Finding Labels`` strings.

    Args:
        strings: sequence of N strings such as ``"Effusion|Mass"`` or ``"No Finding"``.
        images: optional N image names, used to name the row in errors.

    Returns:
        float32 array (N, 14) in the order of ``FINDINGS``; "No Finding" is all zeros.

    Raises:
        DatasetError: an unknown finding, or "No Finding" combined with a finding.
    """
    strings = pd.Series(list(strings), dtype=object).fillna("").astype(str)
    dummies = strings.str.replace(r"\s*\|\s*", "|", regex=True).str.strip().str.get_dummies(sep="|")
    known = set(FINDINGS) | {NO_FINDING}
    for col in dummies.columns:
        if col not in known:
            row = int(np.flatnonzero(dummies[col].to_numpy())[0])
            where = _where(images, row)
            raise DatasetError(
                f"Unknown finding {col!r} in 'Finding Labels' of {where} "
                f"(value {strings.iloc[row]!r}); known findings: {list(FINDINGS) + [NO_FINDING]}"
            )
    empty = (
        (dummies.sum(axis=1) == 0).to_numpy()
        if len(dummies.columns)
        else np.ones(len(strings), bool)
    )
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        where = _where(images, row)
        raise DatasetError(f"Empty 'Finding Labels' in {where}; use 'No Finding' for a normal film")
    labels = dummies.reindex(columns=list(FINDINGS), fill_value=0).to_numpy(np.float32)
    if NO_FINDING in dummies.columns:
        both = (dummies[NO_FINDING].to_numpy() > 0) & (labels.sum(axis=1) > 0)
        if both.any():
            row = int(np.flatnonzero(both)[0])
            where = _where(images, row)
            raise DatasetError(
                f"'No Finding' combined with findings in {where}: {strings.iloc[row]!r}"
            )
    return labels


def parse_age(values, *, images=None) -> np.ndarray:
    """Ages in whole years from ``058Y`` / ``58`` / ``007M`` / ``010D`` style values (int64)."""
    out = np.empty(len(values), np.int64)
    for i, value in enumerate(values):
        m = _AGE.match(str(value))
        if m is None:
            where = _where(images, i)
            raise DatasetError(
                f"Cannot read 'Patient Age' {value!r} of {where}; expected e.g. 58 or 058Y"
            )
        n, unit = int(m.group(1)), m.group(2).upper()
        out[i] = n // 12 if unit == "M" else 0 if unit == "D" else n
    return out


def read_label_table(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a ``Data_Entry_2017*.csv`` (2017 with trailing comma and ``058Y`` ages, or 2020).

    Returns:
        metadata: DataFrame with columns image, patient (int), view, age (int, years), sex.
        labels: float32 (N, 14) in ``FINDINGS`` order.
    """
    path = Path(path)
    # index_col=False: the 2017 file ends every line with a comma (one more field than names)
    try:
        raw = pd.read_csv(path, dtype=str, index_col=False, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"the label table {path} is empty (no header, no rows); "
                           + _table_fix(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the label table {path} as CSV "
                           f"({' '.join(str(exc).split())}); " + _table_fix(path)) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    absent = [c for c in _COLUMNS if c not in raw.columns]
    if absent:
        raise DatasetError(f"{path.name} lacks column(s) {absent}; found {list(raw.columns)}")
    raw = raw[list(_COLUMNS)].rename(columns=_COLUMNS)
    images = raw["image"].str.strip().to_numpy()
    dup = pd.Index(images).duplicated()
    if dup.any():
        raise DatasetError(f"{path.name} lists image {images[dup][0]!r} more than once")
    labels = parse_findings(raw["findings"], images=images)
    patient = pd.to_numeric(raw["patient"].str.strip(), errors="coerce")
    if patient.isna().any():
        row = int(np.flatnonzero(patient.isna().to_numpy())[0])
        raise DatasetError(
            f"Bad 'Patient ID' {raw['patient'].iloc[row]!r} of image {images[row]!r}"
        )
    meta = pd.DataFrame(
        {
            "image": images,
            "patient": patient.to_numpy(np.int64),
            "view": raw["view"].str.strip().str.upper().to_numpy(),
            "age": parse_age(raw["age"].to_numpy(), images=images),
            "sex": raw["sex"].str.strip().str.upper().to_numpy(),
        }
    )
    return meta, labels


_VIEWS: dict = {}  # (label table, mtime) -> {image: view}, for views_of


def views_of(root: str | os.PathLike, image_ids) -> tuple[np.ndarray | None, str]:
    """(N,) view (PA / AP) of each of ``image_ids`` from the label table of the dataset at
    ``root``, or (None, why not): the leaderboard's view strata and the strata the driver
    stores with each run."""
    try:
        path = find_label_file(root)
        key = (str(path.resolve()), path.stat().st_mtime_ns)
        if key not in _VIEWS:
            meta, _ = read_label_table(path)
            _VIEWS.clear()  # one table remembered: a process reads one dataset's
            _VIEWS[key] = dict(zip(meta["image"].astype(str), meta["view"], strict=True))
    except Exception:  # noqa: BLE001 - the data is not here (moved, other machine)
        return None, "the dataset's label table is not readable here: no view strata"
    view = _VIEWS[key]
    got = [view.get(str(i)) for i in image_ids]
    if any(v is None for v in got):
        return None, "test images missing from the dataset's label table: no view strata"
    return np.asarray(got), ""


def repair_hint(root: str | os.PathLike, release: str) -> str:
    """What to do about missing or broken files in ``root``: a CXR14-sim folder is generated
    again (never downloaded); for a release, ``release`` says what to get from NIH."""
    if is_sim(root):
        return (f"{root} is CXR14-sim (it holds {SIM_MARKER}): delete that folder and generate "
                "it again (a suite with `dataset.sim` does so on its next run; else python -m "
                "mlbench data sim ROOT)")
    return release


def _table_fix(path: Path) -> str:
    return repair_hint(path.parent, f"get {path.name} again from the NIH release ({NIH_URL})")


def read_split_list(path: Path) -> list[str]:
    """Image names in an official split list (one per line)."""
    if not path.is_file():
        raise FileNotFoundError(f"Split list {path} not found. " + _release_hint(path.name))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"the split list {path} is not a text file of image names; "
                           + _table_fix(path)) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def index_images(root: str | os.PathLike) -> dict[str, Path]:
    """Map image name -> path over ``images/`` and ``images_*/images/`` (both layouts)."""
    found: dict[str, Path] = {}
    for d in image_dirs(root):
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for entry in it:
                if entry.name.endswith(".png") and entry.name not in found:
                    found[entry.name] = Path(entry.path)
    return found


def split_patients(patients, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N,): True for images whose patient goes to validation.

    Patients (not images) are shuffled with ``seed``; the first ``round(val_fraction * P)``
    form the validation set, so no patient is in both sets and the split depends only on
    the set of patients, the fraction and the seed.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"Expected argument `val_fraction` in [0, 1) but got {val_fraction!r}")
    patients = np.asarray(patients)
    unique = np.unique(patients)
    rng = np.random.default_rng(seed)
    n_val = int(round(val_fraction * len(unique)))
    val = rng.permutation(unique)[:n_val]
    return np.isin(patients, val)


class ReleaseTables:
    """Label table + official split lists of one root, joined and checked.

    Attributes:
        meta: DataFrame image, patient, view, age, sex, official ("train_val" | "test").
        labels: float32 (N, 14).
        label_file, split_files: the files read.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = check_root(root)
        self.label_file = find_label_file(self.root)
        self.split_files = {k: self.root / v for k, v in SPLIT_FILES.items()}
        lists = {k: read_split_list(p) for k, p in self.split_files.items()}
        meta, labels = read_label_table(self.label_file)
        row = pd.Series(np.arange(len(meta)), index=meta["image"])
        order, official = [], []
        for name, images in lists.items():
            unknown = [im for im in images if im not in row.index]
            if unknown:
                raise DatasetError(
                    f"{len(unknown)} image(s) of {self.split_files[name].name} are not in "
                    f"{self.label_file.name}, e.g. {unknown[:5]}"
                )
            order.append(row[images].to_numpy())
            official += [name] * len(images)
        idx = np.concatenate(order)
        if len(np.unique(idx)) != len(idx):
            raise DatasetError(_shared_images(lists, self.split_files))
        self.meta = meta.iloc[idx].reset_index(drop=True)
        self.meta["official"] = official
        self.labels = labels[idx]
        tv = set(self.meta.patient[self.meta.official == "train_val"])
        shared = sorted(tv & set(self.meta.patient[self.meta.official == "test"]))
        if shared:
            raise DatasetError(
                f"{len(shared)} patient(s) appear in both train_val_list.txt and test_list.txt "
                f"(e.g. {shared[:5]}); the official split is patient-disjoint"
            )

    def split_mask(self, split: str, val_fraction: float, seed: int) -> np.ndarray:
        """Boolean mask over ``meta`` rows for ``split``."""
        check_choice("split", split, SPLITS)
        tv = (self.meta.official == "train_val").to_numpy()
        if split == "test":
            return ~tv
        if split == "train_val":
            return tv
        val = np.zeros(len(tv), bool)
        val[tv] = split_patients(self.meta.patient[tv], val_fraction, seed)
        return val if split == "val" else tv & ~val


def _shared_images(lists: dict[str, list[str]], files: dict[str, Path]) -> str:
    """Which images the split lists share or repeat, named (the error's text)."""
    tv, test = lists["train_val"], lists["test"]
    both = sorted(set(tv) & set(test))
    if both:
        return (f"{len(both)} image(s) are in both {files['train_val'].name} and "
                f"{files['test'].name}, e.g. {both[:5]}; an image belongs to one split: "
                f"remove it from one of the lists (the official lists share none)")
    name, images = next((k, v) for k, v in lists.items() if len(set(v)) != len(v))
    seen: set[str] = set()
    twice = sorted({im for im in images if im in seen or seen.add(im)})
    return (f"{files[name].name} lists {len(twice)} image(s) more than once, e.g. {twice[:5]}; "
            "list each image once")


def decode_png(path: str | os.PathLike) -> np.ndarray:
    """A grayscale uint8 (H, W) array from a PNG (L, LA, RGB(A), or 16-bit)."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I"):
            a = np.asarray(im, dtype=np.float64)
            return np.clip(a * (255.0 / max(a.max(), 1.0)), 0, 255).astype(np.uint8)
        return np.array(im.convert("L"), dtype=np.uint8)
