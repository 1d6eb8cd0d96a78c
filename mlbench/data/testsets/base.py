"""What a test set is: images, labels with a missing-label mask, patients, views, and a
stated map from the model's 14 NIH outputs to the test set's findings (:class:`LabelMap`),
with a name and where it came from. Plus the pieces every reader shares: the label policy of
report-mined labels (:class:`LabelPolicy`), the registry of named test sets, the list of
images present, and a torch Dataset over image files (:class:`ImageFiles`).

Torch is imported only by :class:`ImageFiles` (lazily): building a test set reads tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlbench.data.release import FINDINGS

MISSING = ("error", "skip")
UNCERTAIN = ("ignore", "ones", "zeros")
BLANK = ("zeros", "ignore")


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"Expected argument `{name}` to be one of {list(allowed)} "
                         f"but got {value!r}")


# --------------------------------------------------------------------------- label map


@dataclass(frozen=True)
class LabelMap:
    """Which of the model's outputs score each finding of a test set.

    Attributes:
        rules: per test-set finding, in column order, the model outputs (names in
            ``FINDINGS``) whose probabilities are combined: one output is taken as it is,
            several by their maximum (the image is positive for the finding when any of them
            is: "Nodule or mass" <- max(Nodule, Mass)).
        why: per finding with a non-trivial rule, the reason and its source.
        left_out: test-set findings with no model output, and why (they are not scored).
    """

    rules: tuple[tuple[str, tuple[str, ...]], ...]
    why: tuple[tuple[str, str], ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        for finding, outputs in self.rules:
            unknown = [o for o in outputs if o not in FINDINGS]
            if not outputs or unknown:
                raise ValueError(f"Label map of {finding!r}: expected model outputs among "
                                 f"{list(FINDINGS)} but got {list(outputs)}")

    @classmethod
    def identity(cls, findings=FINDINGS) -> LabelMap:
        return cls(tuple((f, (f,)) for f in findings))

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.rules)

    def apply(self, scores) -> np.ndarray:
        """(N, 14) model probabilities (``FINDINGS`` order) -> (N, K) scores of the test
        set's findings."""
        s = np.asarray(scores)
        if s.ndim != 2 or s.shape[1] != len(FINDINGS):
            raise ValueError(f"Expected model scores of shape (N, {len(FINDINGS)}), got {s.shape}")
        cols = [s[:, [FINDINGS.index(o) for o in outputs]].max(axis=1)
                for _, outputs in self.rules]
        return np.stack(cols, axis=1) if cols else np.zeros((len(s), 0), s.dtype)

    def describe(self) -> list[str]:
        """One line per finding: ``"Nodule or mass <- max(Nodule, Mass)"``, then why, then
        the findings left out."""
        why = dict(self.why)
        lines = []
        for f, outputs in self.rules:
            rule = outputs[0] if len(outputs) == 1 else f"max({', '.join(outputs)})"
            lines.append(f"{f} <- {rule}" + (f"  ({why[f]})" if f in why else ""))
        lines += [f"{f}: not scored ({reason})" for f, reason in self.left_out]
        return lines


# --------------------------------------------------------------------------- label policy


@dataclass(frozen=True)
class LabelPolicy:
    """What report-mined labels of 1 (positive), 0 (negative), -1 (uncertain) and blank (not
    mentioned) become (the CheXpert labeler's values; MIMIC-CXR uses the same labeler).

    ``uncertain``: "ignore" (masked: the label is not used; torchxrayvision turns -1 into
    NaN; Irvin et al. 2019's U-Ignore), "ones" (U-Ones) or "zeros" (U-Zeros).
    ``blank``: "zeros" (not mentioned = negative: what the CheXpert authors do, Irvin et al.
    2019) or "ignore" (unknown: torchxrayvision). Under "ignore", a study whose "No Finding" is
    1 still has its blank findings negative (the labeler sets No Finding only when no finding
    is positive or uncertain; torchxrayvision does the same).
    """

    uncertain: str = "ignore"
    blank: str = "zeros"

    def __post_init__(self):
        check_choice("uncertain", self.uncertain, UNCERTAIN)
        check_choice("blank", self.blank, BLANK)

    def describe(self) -> str:
        blank = {"zeros": "negative (as the CheXpert authors)",
                 "ignore": "unknown, masked (as torchxrayvision; No Finding = 1 makes them "
                           "negative)"}[self.blank]
        unc = {"ignore": "masked (not used)", "ones": "positive (U-Ones)",
               "zeros": "negative (U-Zeros)"}[self.uncertain]
        return f"uncertain (-1): {unc}; not mentioned (blank): {blank}"

    def apply(self, values: np.ndarray, no_finding: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) floats in {1, 0, -1, NaN} -> (labels float32 (N, K) in {0, 1}, known bool
        (N, K)). ``no_finding``: (N,) the No Finding column (1.0 where set)."""
        v = np.asarray(values, dtype=np.float64)
        bad = ~np.isnan(v) & ~np.isin(v, (1.0, 0.0, -1.0))
        if bad.any():
            raise ValueError(f"Expected labels in {{1, 0, -1, blank}}, got {np.unique(v[bad])}")
        blank = np.isnan(v)
        if self.blank == "ignore" and no_finding is not None:
            blank_known = (np.asarray(no_finding, dtype=np.float64) == 1.0)[:, None] & blank
        else:
            blank_known = np.full(v.shape, self.blank == "zeros")
        unc = v == -1.0
        labels = np.where(unc, 1.0 if self.uncertain == "ones" else 0.0, np.nan_to_num(v))
        labels = np.where(blank, 0.0, labels)
        known = np.where(blank, blank_known, ~(unc & (self.uncertain == "ignore")))
        return labels.astype(np.float32), known


# --------------------------------------------------------------------------- the test set


@dataclass
class TestSet:
    """A named test set (see ``mlbench.data.testsets`` for the built-ins and readers).

    Attributes:
        name: e.g. "nih-expert" or "padchest".
        source: provenance in words: the tables read (paths), their origin and citation.
        label_map: the model's 14 outputs -> this test set's K findings (``label_map.findings``).
        images: (N,) image ids (NIH: file name; external: path relative to the root), str.
        labels: (N, K) float32 in {0, 1}; 0 where ``mask`` is False (not a negative).
        mask: (N, K) bool, True where the label is known and used.
        patients: (N,) patient ids, str or int, within ``population``.
        views: (N,) "PA", "AP", ... (the source's view, upper case).
        population: whose patients: the same id in two test sets of one population is one
            person ("nih" for the three NIH test sets; each external dataset its own).
        policy: how uncertain / unmentioned labels were treated, in words ("" if none apply).
        notes: statements for the output (e.g. the split restricted to the images present).
        nih_rows: (N,) rows of the NIH test split these images are (ChestXray14 ``test``
            order: the model's scores of that split are reused), or None.
        paths: (N,) image files (external test sets), or None.
    """

    __test__ = False  # not a pytest class

    name: str
    source: str
    label_map: LabelMap
    images: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    patients: np.ndarray
    views: np.ndarray
    population: str
    policy: str = ""
    notes: list[str] = field(default_factory=list)
    nih_rows: np.ndarray | None = None
    paths: list[Path] | None = None

    def __post_init__(self):
        self.images = np.asarray(self.images).astype(str)
        self.labels = np.ascontiguousarray(self.labels, dtype=np.float32)
        self.mask = np.ascontiguousarray(self.mask, dtype=bool)
        self.patients = np.asarray(self.patients)
        if self.patients.dtype == object:
            self.patients = self.patients.astype(str)
        self.views = np.asarray(self.views).astype(str)
        n, k = len(self.images), len(self.label_map.findings)
        for what, a in (("labels", self.labels), ("mask", self.mask)):
            if a.shape != (n, k):
                raise ValueError(f"Test set {self.name}: expected {what} of shape {(n, k)}, "
                                 f"got {a.shape}")
        for what, a in (("patients", self.patients), ("views", self.views)):
            if a.shape != (n,):
                raise ValueError(f"Test set {self.name}: expected {n} {what}, got {a.shape}")
        if not np.isin(self.labels[self.mask], (0.0, 1.0)).all():
            raise ValueError(f"Test set {self.name}: labels must be 0 or 1 where known")
        self.labels[~self.mask] = 0.0

    @property
    def findings(self) -> tuple[str, ...]:
        return self.label_map.findings

    def __len__(self) -> int:
        return len(self.images)

    def scores(self, model_scores) -> np.ndarray:
        """The test set's (N, K) scores from the model's (N, 14) probabilities of its images
        (rows in this test set's order)."""
        return self.label_map.apply(model_scores)

    def scores_from_nih(self, nih_test_scores) -> np.ndarray:
        """(N, K) scores from the model's scores of the whole NIH test split (ChestXray14
        ``test`` rows): the rows of this test set, the label map applied."""
        if self.nih_rows is None:
            raise ValueError(f"Test set {self.name} is not made of NIH test images")
        return self.label_map.apply(np.asarray(nih_test_scores)[self.nih_rows])

    def evaluate(self, model_scores) -> dict:
        """``mlbench.stats.evaluate_scores`` of the mapped scores, masked labels skipped."""
        from mlbench.stats import evaluate_scores

        return evaluate_scores(self.labels, self.scores(model_scores), mask=self.mask)

    def counts(self) -> pd.DataFrame:
        """Per finding: positives, negatives, unlabelled images, and the patients with a
        positive / with a labelled image."""
        gi = pd.factorize(pd.Series(self.patients))[0]
        rows = []
        for k, f in enumerate(self.findings):
            pos = self.mask[:, k] & (self.labels[:, k] == 1)
            neg = self.mask[:, k] & (self.labels[:, k] == 0)
            rows.append({"finding": f, "positives": int(pos.sum()), "negatives": int(neg.sum()),
                         "unlabelled": int((~self.mask[:, k]).sum()),
                         "positive_patients": len(np.unique(gi[pos])),
                         "labelled_patients": len(np.unique(gi[self.mask[:, k]]))})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """What the output states about this test set: size, map, policy, notes."""
        n_pat = len(np.unique(self.patients))
        lines = [f"test set {self.name}: {len(self):,} images of {n_pat:,} patients; "
                 f"source: {self.source}"]
        lines += ["  " + x for x in self.label_map.describe()]
        if self.policy:
            lines.append(f"  labels: {self.policy}")
        lines += [f"  note: {x}" for x in self.notes]
        return "\n".join(lines)

    def dataset(self, image_size: int, transform: Callable | None = None):
        """A torch Dataset of this test set's images (external test sets: the files, decoded
        and resized as the prepared cache does; NIH test sets score the NIH test split)."""
        if self.paths is None:
            raise ValueError(f"Test set {self.name} is scored through the NIH test split "
                             "(scores_from_nih), not from its own files")
        return ImageFiles(self.paths, image_size, transform)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TestSetInfo:
    """A registered test set: ``build(source, **options) -> TestSet``; ``kind`` "nih" (built
    from the NIH release: ``source`` is its root or its ChestXray14 test split) or "external"
    (``source`` is the dataset's own root folder)."""

    __test__ = False

    name: str
    build: Callable[..., TestSet]
    kind: str
    description: str


_REGISTRY: dict[str, TestSetInfo] = {}


def register_test_set(name: str, *, kind: str, description: str):
    """Decorator: register a test-set builder under ``name``."""
    check_choice("kind", kind, ("nih", "external"))

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"Test set {name!r} is already registered")
        _REGISTRY[name] = TestSetInfo(name, fn, kind, description)
        return fn

    return deco


def list_test_sets() -> list[str]:
    return sorted(_REGISTRY)


def get_test_set_info(name: str) -> TestSetInfo:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown test set {name!r}; registered: {list_test_sets()}")
    return _REGISTRY[name]


def create_test_set(name: str, source, **options) -> TestSet:
    """Build the registered test set ``name`` from ``source`` (see :class:`TestSetInfo`);
    ``options`` are the builder's keywords (e.g. ``uncertain="ones"``); None values are
    dropped so that a suite's unset keys keep the builder's defaults."""
    info = get_test_set_info(name)
    return info.build(source, **{k: v for k, v in options.items() if v is not None})


# --------------------------------------------------------------------------- images


def present_files(paths: list[Path]) -> np.ndarray:
    """(N,) bool: which of the files exist."""
    return np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))


def restrict_to_present(name: str, root: Path, paths: list[Path], missing: str,
                        fix: str) -> tuple[np.ndarray, str | None]:
    """(keep mask, note or None) for ``missing`` = "error" | "skip" over listed image files."""
    check_choice("missing", missing, MISSING)
    present = present_files(paths)
    if present.all():
        return present, None
    absent = [str(p) for p, ok in zip(paths, present, strict=True) if not ok]
    if missing == "error" or not present.any():
        why = "none of them is" if not present.any() else f"{len(absent)} are not"
        raise FileNotFoundError(
            f"{len(paths)} image(s) listed for test set {name}, {why} under {root}, e.g. "
            f"{absent[:3]}. {fix}" + ("" if not present.any() else
                                      "; or leave them out with missing='skip'"))
    return present, (f"restricted to the {int(present.sum()):,} of {len(paths):,} listed "
                     f"images present under {root} (missing='skip')")


class ImageFiles:
    """Torch Dataset over image files: ``ds[i]`` is ``(image float32 (1, S, S), zeros(14))``,
    the image decoded (PNG of any mode, 16-bit included, or JPEG), centre-cropped and resized
    exactly as the prepared cache does (``mlbench.data.cache.load_resized``), then
    ``transform`` (which gets the uint8 (1, S, S) tensor; None gives [0, 1] floats). The
    zeros stand in for targets so that ``engine.evaluate`` runs on it unchanged: a test set's
    metrics come from :meth:`TestSet.evaluate` (its labels and mask), not from the loader."""

    def __init__(self, paths: list[Path], image_size: int, transform: Callable | None = None):
        self.paths, self.image_size, self.transform = list(paths), int(image_size), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        from mlbench.data.cache import load_resized

        img = torch.from_numpy(np.array(load_resized(self.paths[i], self.image_size)))[None]
        img = self.transform(img) if self.transform is not None else img.float().div_(255.0)
        return img, torch.zeros(len(FINDINGS))


def find_table(root: Path, names: list[str], dataset: str, url: str) -> Path:
    """The first of ``names`` (or its ``.gz``) in ``root``; FileNotFoundError naming them."""
    for name in names:
        for candidate in (root / name, root / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"No {dataset} label table in {root}: expected {' or '.join(names)} "
                            f"(or .gz), as the {dataset} release ships it ({url})")
