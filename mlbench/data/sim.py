"""CXR14-sim (SPEC §3.2): a ChestX-ray14 look-alike written in the NIH layout.

Rows (findings, patients, views, ages, sexes) are sampled patient-wise from the real 2020
label table shipped in ``torchxrayvision``; pixels are procedurally rendered chest phantoms
with one rendered sign per finding present. Signs of related findings look alike
(Infiltration / Pneumonia / Consolidation / Edema: patchy or diffuse opacities; Mass / Nodule:
round opacities of overlapping sizes) and some signs are faint or missing (``VISIBLE``),
as text-mined labels are noisy (the rendering: ``mlbench.data.phantom``). Everything is a
function of the seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from mlbench.data.locks import folder_lock
from mlbench.data.phantom import render
from mlbench.data.release import parse_findings, shipped_table
from mlbench.layout import LABEL_FILES, SIM_KNOBS, SIM_MARKER, SPLIT_FILES, sim_knobs

REFERENCE_TABLE = "Data_Entry_2017_v2020.csv.gz"
# Fixed PNG encoder settings: no metadata chunks, fixed zlib level -> identical bytes.
PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "optimize": False}


def reference_table_path() -> Path:
    """The 2020 label table inside the installed ``torchxrayvision`` (not imported)."""
    return shipped_table(REFERENCE_TABLE, needed_for="CXR14-sim")


def _known_test_patients() -> set[int]:
    """Patients of the official test list that the package reveals: the NIH bounding boxes
    (BBox_List_2017) were drawn on test images only."""
    path = reference_table_path().parent / "BBox_List_2017.csv.gz"
    if not path.is_file():
        return set()
    names = pd.read_csv(path, usecols=[0]).iloc[:, 0]
    return set(names.str.slice(0, 8).astype(int))


def sample_rows(images: int, seed: int, *, max_per_patient: int = 6) -> pd.DataFrame:
    """``images`` rows of the real table, taken whole patient by whole patient.

    Patients are visited in a seeded random order; a patient with more than
    ``max_per_patient`` films contributes a seeded subset of them (so a few chronic patients
    do not fill a small sample); the last patient is truncated to hit ``images`` exactly.
    Rows are returned verbatim (strings), in image-name order.
    """
    table = pd.read_csv(reference_table_path(), dtype=str, keep_default_na=False)
    if not 1 <= images <= len(table):
        raise ValueError(f"Expected argument `images` in [1, {len(table)}] but got {images!r}")
    rng = np.random.default_rng([seed, 0])
    groups = table.groupby("Patient ID", sort=True).indices
    chosen, total = [], 0
    for pid in rng.permutation(np.array(sorted(groups), dtype=object)):
        rows = groups[pid]
        if len(rows) > max_per_patient:
            rows = np.sort(rng.choice(rows, max_per_patient, replace=False))
        rows = rows[: images - total]
        chosen.append(rows)
        total += len(rows)
        if total >= images:
            break
    return table.iloc[np.sort(np.concatenate(chosen))].reset_index(drop=True)


def assign_split(rows: pd.DataFrame, seed: int, test_fraction: float = 0.2,
                 sick_preference: float = 2.0) -> np.ndarray:
    """Boolean (N,) test mask, patient-disjoint, with about ``test_fraction`` of the images.

    Patients known to be in the official test list go to test first; the rest are drawn
    with a preference for sick patients, as the official test list is sicker: a patient's
    key is ``u ** (1 / (1 + sick_preference * sick share))`` (u uniform), the highest keys
    first (a weighted order without replacement; 0: no preference).
    """
    patient = rows["Patient ID"].astype(int).to_numpy()
    sick = (rows["Finding Labels"] != "No Finding").to_numpy()
    ids, inv, counts = np.unique(patient, return_inverse=True, return_counts=True)
    sick_frac = np.bincount(inv, weights=sick) / counts
    rng = np.random.default_rng([seed, 1])
    key = rng.random(len(ids)) ** (1.0 / (1.0 + sick_preference * sick_frac))
    key[np.isin(ids, list(_known_test_patients()))] = 2.0
    order = np.argsort(-key, kind="stable")
    filled = np.cumsum(counts[order])
    n_test = int(np.searchsorted(filled, test_fraction * len(rows))) + 1
    return np.isin(patient, ids[order[:n_test]])


def split_rows(images: int, seed: int, *, test_fraction: float | None = None,
               sick_preference: float | None = None,
               max_per_patient: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of a CXR14-sim folder and its test mask.

    At the defaults (``mlbench.layout.SIM_KNOBS``: None or the default value) this is
    today's folder: ``images`` rows (:func:`sample_rows`), split by :func:`assign_split`.
    With a knob set, the training side (``train_val``) is still exactly that folder's, so
    its images and positives are kept whatever the knobs; the test split is drawn afresh
    from the other patients of the real table (films capped at ``max_per_patient`` per
    patient, seeded) with ``sick_preference`` (default 2.0) in the key of
    :func:`assign_split` and no official-test patients first, patient by patient until it
    holds ``test_fraction / (1 - test_fraction)`` times the training side's images (the
    last patient truncated to hit it exactly): a folder of ``train_val + test`` images, in
    the real table's order.
    """
    rows = sample_rows(images, seed, max_per_patient=max_per_patient)
    test = assign_split(rows, seed)
    knobs = sim_knobs(test_fraction=test_fraction, sick_preference=sick_preference)
    if not knobs:
        return rows, test
    frac = knobs.get("test_fraction", SIM_KNOBS["test_fraction"])
    pref = knobs.get("sick_preference", SIM_KNOBS["sick_preference"])
    if not 0 < frac < 1:
        raise ValueError(f"Expected argument `test_fraction` in (0, 1) but got {frac!r}")
    if pref < 0:
        raise ValueError(f"Expected argument `sick_preference` >= 0 but got {pref!r}")
    train = rows[~test]
    n_test = max(1, round(frac / (1 - frac) * len(train)))
    table = pd.read_csv(reference_table_path(), dtype=str, keep_default_na=False)
    taken = set(train["Patient ID"])
    groups = table.groupby("Patient ID", sort=True).indices
    rng = np.random.default_rng([seed, 3])
    pids, films = [], []
    for pid in sorted(groups):
        if pid in taken:
            continue
        idx = groups[pid]
        if len(idx) > max_per_patient:
            idx = np.sort(rng.choice(idx, max_per_patient, replace=False))
        pids.append(pid)
        films.append(idx)
    counts = np.array([len(f) for f in films])
    if counts.sum() < n_test:
        raise ValueError(f"a test split of {n_test} images needs more patients than the real "
                         f"table has beside the training side ({counts.sum()} films); lower "
                         "`test_fraction` or `images`")
    sick = (table["Finding Labels"] != "No Finding").to_numpy()
    sick_frac = np.array([sick[f].mean() for f in films])
    key = rng.random(len(pids)) ** (1.0 / (1.0 + pref * sick_frac))
    order = np.argsort(-key, kind="stable")
    chosen, total = [], 0
    for k in order:
        part = films[k][: n_test - total]
        chosen.append(part)
        total += len(part)
        if total >= n_test:
            break
    test_part = table.iloc[np.sort(np.concatenate(chosen))]
    position = pd.Series(np.arange(len(table)), index=table["Image Index"])
    out = pd.concat([train, test_part])
    out = out.iloc[np.argsort(position[out["Image Index"]].to_numpy(), kind="stable")]
    out = out.reset_index(drop=True)  # in the real table's order, as sample_rows gives them
    return out, out["Image Index"].isin(set(test_part["Image Index"])).to_numpy()


class SimFolderError(ValueError):
    """The output folder holds something that CXR14-sim must not overwrite."""


def sim_params(images: int, size: int, seed: int, **knobs) -> dict:
    """The parameters a CXR14-sim folder is made with (``SIM_MARKER``'s content): the test
    split's knobs (``test_fraction``, ``sick_preference``) only where they differ from their
    defaults, so a folder made before they existed keeps its marker."""
    bad = sorted(set(knobs) - set(SIM_KNOBS))
    if bad:
        raise TypeError(f"unknown CXR14-sim parameter {bad[0]!r}; knobs: {sorted(SIM_KNOBS)}")
    return {"images": int(images), "seed": int(seed), "size": int(size), **sim_knobs(**knobs)}


def read_marker(root: str | os.PathLike) -> dict | None:
    """The parameters recorded in ``root/SIM_MARKER``, or None when it is absent or unreadable."""
    try:
        made = json.loads((Path(root) / SIM_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return made if isinstance(made, dict) else None


def is_complete(root: str | os.PathLike, params: dict) -> bool:
    """Whether ``root`` holds a finished CXR14-sim made with ``params``."""
    root = Path(root)
    return (read_marker(root) == params and (root / SPLIT_FILES["test"]).is_file()
            and (root / LABEL_FILES[0]).is_file())


def _write_atomic(path: Path, text: str, tmp_dir: Path | None = None) -> None:
    """Write ``path`` through a temporary file renamed over it (in ``tmp_dir``, default the
    same folder; falls back to that folder where ``tmp_dir`` is another file system)."""
    name = f".{path.name}.tmp-{os.getpid()}"
    for folder in ([tmp_dir] if tmp_dir is not None else []) + [path.parent]:
        tmp = folder / name
        with open(tmp, "w", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
            return
        except OSError:
            tmp.unlink(missing_ok=True)
            if folder == path.parent:
                raise


def _refusal(out: Path, params: dict, force: bool) -> str | None:
    """Why CXR14-sim with ``params`` must not be written into ``out`` (None: it may)."""
    if not out.exists():
        return None
    if not out.is_dir():
        return f"{out} is a file, not a folder; give CXR14-sim a new or empty folder"
    made = read_marker(out)
    if made is None and (out / SIM_MARKER).exists():
        made = {}  # a marker we cannot read is still ours
    if made is not None:
        if made == params or force:
            return None
        return (f"{out} holds CXR14-sim made with {made}, not {params}; nothing was changed. "
                "Use another folder, or --force to replace that simulated dataset")
    tables = [n for n in LABEL_FILES if (out / n).exists()]
    if tables:
        return (f"{out} holds a label table ({tables[0]}) that CXR14-sim did not write (no "
                f"{SIM_MARKER}): it looks like a ChestX-ray14 release and is never overwritten, "
                "not even with --force; give CXR14-sim a new or empty folder")
    entries = sorted(p.name for p in out.iterdir())
    if entries and not force:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        return (f"{out} is not empty ({len(entries)} entries: {shown}) and is not a CXR14-sim "
                "folder; nothing was changed. Use a new or empty folder, or --force to write "
                "into it anyway")
    return None


def generate_sim(
    out_dir: str | os.PathLike,
    images: int = 2000,
    size: int = 128,
    seed: int = 0,
    *,
    test_fraction: float | None = None,
    sick_preference: float | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write CXR14-sim in the NIH layout under ``out_dir``; return ``out_dir``.

    Files: ``Data_Entry_2017_v2020.csv`` (2020 format, rows verbatim from the real table),
    ``images/*.png`` (size x size grayscale), ``train_val_list.txt`` and ``test_list.txt``
    (patient-disjoint), and ``SIM_MARKER`` (the parameters). Same arguments give
    byte-identical files. ``test_fraction`` / ``sick_preference``: the test split's share
    and its preference for sick patients (:func:`split_rows`; None, or the defaults of
    ``mlbench.layout.SIM_KNOBS``: the folder as before these knobs, byte for byte); the
    training side keeps its images and positives whatever they are.

    Safe to call on the same folder from several processes at once: the folder is locked
    while it is written, and a folder already holding a finished CXR14-sim of the same
    parameters is returned as it is. The marker is written first and the test list last
    (each table atomically), so a generation killed half-way is redone by the next call.

    Raises:
        SimFolderError: ``out_dir`` holds other data (a non-empty folder without the marker:
            refused unless ``force``; a label table CXR14-sim did not write: always refused)
            or CXR14-sim of other parameters (refused unless ``force``). Nothing is changed.
    """
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"Expected argument `size` to be an int >= 16 but got {size!r}")
    if not isinstance(images, int) or images < 1:
        raise ValueError(f"Expected argument `images` to be an int >= 1 but got {images!r}")
    out = Path(out_dir)
    params = sim_params(images, size, seed, test_fraction=test_fraction,
                        sick_preference=sick_preference)
    problem = _refusal(out, params, force)  # before anything is created
    if problem:
        raise SimFolderError(problem)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        problem = _refusal(out, params, force)  # again: another process may have written
        if problem:
            raise SimFolderError(problem)
        if is_complete(out, params):
            return out
        made = read_marker(out)
        if made is not None and made != params:  # --force over another sim: start clean
            for name in (*SPLIT_FILES.values(), *LABEL_FILES):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / "images", ignore_errors=True)
        # the temporary file beside the folder, not in it: a second driver looking at the
        # folder meanwhile sees it empty or marked, never "not empty and not CXR14-sim"
        _write_atomic(out / SIM_MARKER, json.dumps(params, sort_keys=True), tmp_dir=out.parent)
        _write(out, images, size, seed, params, progress)
    return out


def _write(out: Path, images: int, size: int, seed: int, params: dict,
           progress: bool) -> None:
    (out / "images").mkdir(exist_ok=True)
    knobs = {k: v for k, v in params.items() if k in SIM_KNOBS}
    rows, test = split_rows(images, seed, **knobs)
    labels = parse_findings(rows["Finding Labels"], images=rows["Image Index"].to_numpy())
    ages = pd.to_numeric(rows["Patient Age"]).to_numpy()
    for i in tqdm(range(len(rows)), desc="CXR14-sim", unit="img", disable=not progress):
        rng = np.random.default_rng([seed, 2, i])
        img = render(
            labels[i],
            rows["View Position"].iat[i],
            rows["Patient Gender"].iat[i],
            int(ages[i]),
            size,
            rng,
        )
        Image.fromarray(img).save(out / "images" / rows["Image Index"].iat[i], **PNG_OPTIONS)
    _write_atomic(out / LABEL_FILES[0], rows.to_csv(index=False, lineterminator="\n"))
    names = rows["Image Index"]
    _write_atomic(out / SPLIT_FILES["train_val"], "".join(n + "\n" for n in names[~test]))
    _write_atomic(out / SPLIT_FILES["test"], "".join(n + "\n" for n in names[test]))  # last
