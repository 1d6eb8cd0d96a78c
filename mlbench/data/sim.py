"""CXR14-sim (SPEC §3.2): a ChestX-ray14 look-alike written in the NIH layout.

Rows (findings, patients, views, ages, sexes) are sampled patient-wise from the real 2020
label table shipped in ``torchxrayvision``; pixels are procedurally rendered chest phantoms
with one rendered sign per finding present. Signs of related findings look alike
(Infiltration / Pneumonia / Consolidation / Edema: patchy or diffuse opacities; Mass / Nodule:
round opacities of overlapping sizes) and some signs are faint or missing (``VISIBLE``),
as text-mined labels are noisy. Everything is a function of the seed: the same seed gives
byte-identical files.

Rendering works in normalised coordinates X, Y in [-1, 1] (X to the image right, which is
the patient's left; Y down). Values are attenuation (bright = dense); exposure maps them
to grey levels at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from mlbench.data.release import FINDINGS, parse_findings
from mlbench.layout import LABEL_FILES, SIM_MARKER, SPLIT_FILES

REFERENCE_TABLE = "Data_Entry_2017_v2020.csv.gz"
F = {name: i for i, name in enumerate(FINDINGS)}
# Probability that a labelled finding shows in the pixels (the rest is label noise), and
# the amplitude range of the sign when shown (1 = clearly visible at 64 px).
VISIBLE = {
    "Atelectasis": (0.55, (0.5, 1.0)),
    "Cardiomegaly": (0.9, (0.7, 1.0)),
    "Effusion": (0.85, (0.7, 1.0)),
    "Infiltration": (0.45, (0.3, 0.9)),
    "Mass": (0.8, (0.7, 1.0)),
    "Nodule": (0.6, (0.5, 1.0)),
    "Pneumonia": (0.7, (0.6, 1.0)),
    "Pneumothorax": (0.75, (0.7, 1.0)),
    "Consolidation": (0.55, (0.5, 1.0)),
    "Edema": (0.7, (0.5, 1.0)),
    "Emphysema": (0.9, (0.7, 1.0)),
    "Fibrosis": (0.7, (0.7, 1.0)),
    "Pleural_Thickening": (0.55, (0.5, 1.0)),
    "Hernia": (0.95, (0.8, 1.0)),
}
# Fixed PNG encoder settings: no metadata chunks, fixed zlib level -> identical bytes.
PNG_OPTIONS = {"format": "PNG", "compress_level": 6, "optimize": False}


def reference_table_path() -> Path:
    """The 2020 label table inside the installed ``torchxrayvision`` (not imported)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "CXR14-sim needs the `torchxrayvision` package for its label table"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / REFERENCE_TABLE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the torchxrayvision install")
    return path


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


def assign_split(rows: pd.DataFrame, seed: int, test_fraction: float = 0.2) -> np.ndarray:
    """Boolean (N,) test mask, patient-disjoint, with about ``test_fraction`` of the images.

    Patients known to be in the official test list go to test first; the rest are drawn
    with a preference for sick patients, as the official test list is sicker.
    """
    patient = rows["Patient ID"].astype(int).to_numpy()
    sick = (rows["Finding Labels"] != "No Finding").to_numpy()
    ids, inv, counts = np.unique(patient, return_inverse=True, return_counts=True)
    sick_frac = np.bincount(inv, weights=sick) / counts
    rng = np.random.default_rng([seed, 1])
    key = rng.random(len(ids)) ** (1.0 / (1.0 + 2.0 * sick_frac))  # weighted order, no replacement
    key[np.isin(ids, list(_known_test_patients()))] = 2.0
    order = np.argsort(-key, kind="stable")
    filled = np.cumsum(counts[order])
    n_test = int(np.searchsorted(filled, test_fraction * len(rows))) + 1
    return np.isin(patient, ids[order[:n_test]])


# ----------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(t, t)  # X (S, S), Y (S, S)


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise (S, S), about unit variance: a cells x cells normal grid, bilinearly upsampled."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    u = np.linspace(0, cells, size, dtype=np.float32)
    i = np.minimum(u.astype(np.int64), cells - 1)
    f = u - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]  # (S, cells+1)
    out = rows[:, i] * (1 - f) + rows[:, i + 1] * f
    return out * 1.6


def _sig(t: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * t)


def _ellipse(X, Y, cx, cy, ax, ay, edge):
    """Soft ellipse mask and its radial coordinate (1 on the border)."""
    r = np.sqrt(((X - cx) / ax) ** 2 + ((Y - cy) / ay) ** 2)
    return _sig((1 - r) / edge), r


class Phantom:
    """One chest film being rendered: anatomy first, then a sign per visible finding."""

    def __init__(self, rng: np.random.Generator, size: int, view: str, sex: str, age: int):
        self.rng, self.size, self.view = rng, size, view
        x, y = _grid(size)
        th = rng.normal(0, 0.05)
        s = rng.uniform(0.9, 1.08)
        tx, ty = rng.normal(0, 0.04, 2)
        self.X = ((x - tx) * np.cos(th) + (y - ty) * np.sin(th)) / s
        self.Y = (-(x - tx) * np.sin(th) + (y - ty) * np.cos(th)) / s
        self.heart_scale = (1.1 if view == "AP" else 1.0) * rng.uniform(0.92, 1.08)
        self.dome = {-1: 0.42 + rng.normal(0, 0.03), 1: 0.47 + rng.normal(0, 0.03)}
        self.dome_curv = 1.3
        self.lucency = 0.0
        self.markings = 1.0
        self.female, self.age = sex == "F", age
        self.A = np.zeros((size, size), np.float32)  # attenuation added by findings

    # --- anatomy
    def lungs(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        X, Y = self.X, self.Y
        cx = 0.4 * side
        ell, r = _ellipse(X, Y, cx, -0.06, 0.27, 0.6, 0.04)
        dome = self.dome[side] - self.dome_curv * 0.12 * (1 - ((X - cx) / 0.3) ** 2)
        return ell * _sig((dome - Y) / 0.015), r

    def heart(self) -> np.ndarray:
        k = self.heart_scale
        m, _ = _ellipse(
            self.X, self.Y, 0.07 + 0.05 * (k - 1), 0.22, 0.26 * k, 0.22 * np.sqrt(k), 0.04
        )
        return m

    def render_anatomy(self) -> np.ndarray:
        rng, X, Y = self.rng, self.X, self.Y
        body, _ = _ellipse(X, Y, 0, 0.2, rng.uniform(0.9, 1.0), 1.3, 0.03)
        heart = self.heart()
        lung = np.zeros_like(X)
        texture = _noise(rng, self.size, 12)
        for side in (-1, 1):
            m, _ = self.lungs(side)
            hilum = np.exp(-((X - 0.17 * side) ** 2 + Y**2) / 0.03)
            lung += m * (
                0.3 + self.lucency - self.markings * (0.05 * np.maximum(texture, 0) + 0.12 * hilum)
            )
        lung *= 1 - 0.9 * heart
        ribs = np.clip((np.cos(2 * np.pi * (Y - 0.35 * np.abs(X)) / 0.14) - 0.4) / 0.6, 0, 1)
        ribs *= _sig((0.78 - np.abs(X)) / 0.03) * _sig((0.45 - Y) / 0.05)
        clav = np.exp(-(((Y + 0.62 - 0.15 * np.abs(X)) / 0.03) ** 2)) * (np.abs(X) < 0.6)
        spine = _sig((0.06 - np.abs(X)) / 0.01)
        med = _sig((0.1 - np.abs(X)) / 0.02) * _sig((0.25 - Y) / 0.05)
        A = 0.5 * body + 0.1 * heart + 0.08 * ribs + 0.12 * clav + 0.08 * spine + 0.15 * med - lung
        if self.female:
            for side in (-1, 1):
                A += 0.05 * _ellipse(X, Y, 0.45 * side, 0.5, 0.32, 0.22, 0.1)[0]
        if rng.random() < 0.6:  # normal gastric bubble below the left hemidiaphragm
            A -= 0.12 * _ellipse(X, Y, 0.38, self.dome[1] + 0.1, 0.08, 0.05, 0.1)[0]
        if self.view == "AP" and rng.random() < 0.5:  # ECG electrodes on portable films
            for cx, cy in rng.uniform(-0.6, 0.6, (3, 2)):
                A += 0.3 * _ellipse(X, Y, cx, cy, 0.03, 0.03, 0.1)[0]
        return A

    # --- signs
    def blob(self, cx, cy, r, edge=0.1):
        return _ellipse(self.X, self.Y, cx, cy, r, r, edge)[0]

    def in_lung_point(self) -> tuple[float, float, int]:
        side = int(self.rng.choice((-1, 1)))
        return 0.4 * side + self.rng.uniform(-0.15, 0.15), self.rng.uniform(-0.35, 0.3), side

    def lung_mask(self) -> np.ndarray:
        return self.lungs(-1)[0] + self.lungs(1)[0]

    def patchy(self, a, cells, thresh, gain, focal):
        """Ill-defined opacity: thresholded smooth noise, optionally gathered round a focus."""
        n = _noise(self.rng, self.size, cells)
        patch = _sig((n - thresh) / 0.35)
        if focal:
            cx, cy, _ = self.in_lung_point()
            patch *= self.blob(cx, cy, self.rng.uniform(0.15, 0.25), 0.3)
        self.A += a * gain * patch * self.lung_mask()


def _sign_atelectasis(p: Phantom, a: float) -> None:
    side = int(p.rng.choice((-1, 1)))
    p.dome[side] -= 0.06 * a  # volume loss lifts the hemidiaphragm
    cy = p.dome[side] - p.rng.uniform(0.12, 0.25)
    d = (p.Y - cy - p.rng.uniform(-0.2, 0.2) * (p.X - 0.4 * side)) / 0.02
    p.A += a * 0.2 * np.exp(-(d**2)) * p.lungs(side)[0]


def _sign_cardiomegaly(p: Phantom, a: float) -> None:
    p.heart_scale *= 1 + 0.45 * a


def _sign_effusion(p: Phantom, a: float) -> None:
    sides = (-1, 1) if p.rng.random() < 0.4 else (int(p.rng.choice((-1, 1))),)
    for side in sides:
        h = a * p.rng.uniform(0.1, 0.3)
        lateral = np.clip((side * p.X - 0.2) / 0.4, 0, 1) ** 1.5  # meniscus rises laterally
        level = p.dome[side] - 0.1 - h * (0.3 + lateral)
        ell, _ = _ellipse(p.X, p.Y, 0.4 * side, -0.06, 0.29, 0.62, 0.04)
        p.A += 0.3 * _sig((p.Y - level) / 0.02) * ell * _sig((p.dome[side] + 0.05 - p.Y) / 0.02)


def _sign_mass(p: Phantom, a: float, lo=0.07, hi=0.12, count=1) -> None:
    for _ in range(count):
        cx, cy, _ = p.in_lung_point()
        p.A += a * 0.22 * p.blob(cx, cy, p.rng.uniform(lo, hi), 0.08)


def _sign_nodule(p: Phantom, a: float) -> None:
    _sign_mass(p, a, 0.035, 0.065, count=int(p.rng.integers(1, 4)))


def _sign_pneumothorax(p: Phantom, a: float) -> None:
    side = int(p.rng.choice((-1, 1)))
    k = 1 - a * p.rng.uniform(0.1, 0.25)  # collapsed lung edge, retracted toward the hilum
    outer, _ = _ellipse(p.X, p.Y, 0.4 * side, -0.06, 0.27, 0.6, 0.03)
    inner, r = _ellipse(
        p.X, p.Y, 0.4 * side + 0.1 * side * (1 - k), -0.06 + 0.3 * (1 - k), 0.27 * k, 0.6 * k, 0.02
    )
    rim = outer * (1 - inner) * _sig((p.dome[side] - p.Y) / 0.02)
    p.A += -0.14 * rim + 0.15 * np.exp(-(((r - 1) / 0.03) ** 2)) * outer


def _sign_emphysema(p: Phantom, a: float) -> None:
    for side in (-1, 1):
        p.dome[side] += 0.1 * a
    p.dome_curv *= 1 - 0.7 * a  # flattened diaphragm
    p.lucency += 0.12 * a
    p.markings *= 1 - 0.5 * a
    p.heart_scale *= 1 - 0.1 * a


def _sign_fibrosis(p: Phantom, a: float) -> None:
    net = np.exp(-((_noise(p.rng, p.size, 12) / 0.3) ** 2))  # zero crossings: a reticular net
    zone = _sig((-p.Y - 0.0) / 0.15) + 0.5 * _sig((np.abs(p.X) - 0.5) / 0.05)
    p.A += a * 0.2 * net * zone * p.lung_mask()


def _sign_pleural_thickening(p: Phantom, a: float) -> None:
    side = int(p.rng.choice((-1, 1)))
    _, r = _ellipse(p.X, p.Y, 0.4 * side, -0.06, 0.27, 0.6, 0.04)
    band = np.exp(-(((r - 0.97) / 0.04) ** 2)) * _sig(
        (side * p.X - 0.4) / 0.05 + (-p.Y - 0.3) / 0.05
    )
    p.A += a * 0.2 * band * _sig((p.dome[side] - p.Y) / 0.02)


def _sign_hernia(p: Phantom, a: float) -> None:
    cx, cy, r = p.rng.normal(0.03, 0.03), p.rng.uniform(0.25, 0.35), a * p.rng.uniform(0.07, 0.11)
    bubble = p.blob(cx, cy, r, 0.08)
    p.A += -0.25 * bubble * _sig((cy + 0.2 * r - p.Y) / 0.01) + 0.08 * bubble


def _sign_edema(p: Phantom, a: float) -> None:
    haze = sum(np.exp(-((p.X - 0.22 * s) ** 2 + (p.Y - 0.05) ** 2) / 0.06) for s in (-1, 1))
    p.A += a * 0.14 * haze * p.lung_mask() * (0.7 + 0.3 * _noise(p.rng, p.size, 6))


SIGNS = {
    "Atelectasis": _sign_atelectasis,
    "Cardiomegaly": _sign_cardiomegaly,
    "Effusion": _sign_effusion,
    "Infiltration": lambda p, a: p.patchy(a, 7, 0.6, 0.12, focal=False),
    "Mass": _sign_mass,
    "Nodule": _sign_nodule,
    "Pneumonia": lambda p, a: p.patchy(a, 7, 0.0, 0.22, focal=True),
    "Pneumothorax": _sign_pneumothorax,
    "Consolidation": lambda p, a: p.patchy(a, 5, -0.5, 0.25, focal=True),
    "Edema": _sign_edema,
    "Emphysema": _sign_emphysema,
    "Fibrosis": _sign_fibrosis,
    "Pleural_Thickening": _sign_pleural_thickening,
    "Hernia": _sign_hernia,
}
# Signs that move anatomy (diaphragm, heart) run before the others use the lung masks.
_ANATOMY = ("Atelectasis", "Cardiomegaly", "Emphysema")


def render(
    labels: np.ndarray, view: str, sex: str, age: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """One phantom film, uint8 (size, size), with a sign for each visible finding of ``labels`` (14,)."""
    p = Phantom(rng, size, view, sex, age)
    shown = []
    for name in FINDINGS:
        vis, (lo, hi) = VISIBLE[name]
        if labels[F[name]] > 0 and rng.random() < vis:
            shown.append((name, rng.uniform(lo, hi)))
    for name, a in sorted(shown, key=lambda s: s[0] not in _ANATOMY):  # stable: canonical order
        SIGNS[name](p, a)
    A = p.render_anatomy() + p.A
    # exposure: portable AP films are flatter and noisier
    flat = 0.85 if view == "AP" else 1.0
    contrast = rng.uniform(0.85, 1.15) * flat
    img = 0.12 + rng.uniform(-0.04, 0.04) + contrast * A + 0.04 * p.X * rng.normal()  # heel effect
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    img = img + rng.uniform(0.01, 0.03) * (1.3 if view == "AP" else 1.0) * rng.standard_normal(
        img.shape
    )
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


class SimFolderError(ValueError):
    """The output folder holds something that CXR14-sim must not overwrite."""


def sim_params(images: int, size: int, seed: int) -> dict:
    """The parameters a CXR14-sim folder is made with (``SIM_MARKER``'s content)."""
    return {"images": int(images), "seed": int(seed), "size": int(size)}


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


@contextlib.contextmanager
def folder_lock(root: Path):
    """An exclusive ``flock`` on the folder itself (no lock file left behind): concurrent
    generators of one folder run one after the other, the later ones finding it complete."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    test_fraction: float = 0.2,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write CXR14-sim in the NIH layout under ``out_dir``; return ``out_dir``.

    Files: ``Data_Entry_2017_v2020.csv`` (2020 format, rows verbatim from the real table),
    ``images/*.png`` (size x size grayscale), ``train_val_list.txt`` and ``test_list.txt``
    (patient-disjoint), and ``SIM_MARKER`` (the parameters). Same arguments give
    byte-identical files.

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
    params = sim_params(images, size, seed)
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
        _write_atomic(out / SIM_MARKER, json.dumps(params, sort_keys=True))
        _write(out, images, size, seed, test_fraction, progress)
    return out


def _write(out: Path, images: int, size: int, seed: int, test_fraction: float,
           progress: bool) -> None:
    (out / "images").mkdir(exist_ok=True)
    rows = sample_rows(images, seed)
    test = assign_split(rows, seed, test_fraction)
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
