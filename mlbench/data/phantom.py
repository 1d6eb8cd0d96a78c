"""CXR14-sim pixels: procedurally rendered chest phantoms, one sign per visible finding.

Signs of related findings look alike (Infiltration / Pneumonia / Consolidation / Edema:
patchy or diffuse opacities; Mass / Nodule: round opacities of overlapping sizes) and some
signs are faint or missing (``VISIBLE``), as text-mined labels are noisy. Everything is a
function of the generator passed in: the same seed gives the same pixels.

Rendering works in normalised coordinates X, Y in [-1, 1] (X to the image right, which is
the patient's left; Y down). Values are attenuation (bright = dense); exposure maps them
to grey levels at the end.
"""

from __future__ import annotations

import functools

import numpy as np

from mlbench.data.release import FINDINGS

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
