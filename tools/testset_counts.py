"""What each built-in NIH test set holds: images, patients, positives per finding.

    python -m tools.testset_counts --lists ../shared/data/nih-official-split
    python -m tools.testset_counts --root ../shared/data/nih-real-256

``--lists``: the official test_list.txt of that folder against the 2020 label table shipped
with torchxrayvision (tables only, no pixels: the counts of the full official test split).
``--root``: a dataset folder in the NIH layout (its test split, the images present).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mlbench.data.release import ReleaseTables, shipped_table
from mlbench.data.testsets import create_test_set

BUILT_IN = ("nih", "nih-expert", "nih-bbox")


def official_test_split(lists: Path) -> SimpleNamespace:
    """The official test split's labels and patients (no images): the shipped 2020 table
    joined with ``lists``/train_val_list.txt and test_list.txt."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with gzip.open(shipped_table("Data_Entry_2017_v2020.csv.gz"), "rb") as src, \
                open(root / "Data_Entry_2017_v2020.csv", "wb") as dst:
            shutil.copyfileobj(src, dst)
        for name in ("train_val_list.txt", "test_list.txt"):
            shutil.copy(lists / name, root / name)
        tables = ReleaseTables(root)
    test = (tables.meta.official == "test").to_numpy()
    return SimpleNamespace(metadata=tables.meta[test].reset_index(drop=True),
                           labels=tables.labels[test], coverage_note=lambda: None)


def report(source, where: str) -> None:
    print(f"## {where}")
    for name in BUILT_IN:
        ts = create_test_set(name, source)
        print(f"{name}: {len(ts):,} images, {len(np.unique(ts.patients)):,} patients")
        c = ts.counts()
        for row in c.itertuples():
            print(f"  {row.finding:<20} positives {row.positives:>6,} ({row.positive_patients:,} "
                  f"patients)  negatives {row.negatives:>6,}  unlabelled {row.unlabelled:>6,}")
        for note in ts.notes:
            print(f"  note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lists", type=Path, help="folder with the official split lists")
    ap.add_argument("--root", type=Path, help="a dataset root in the NIH layout")
    args = ap.parse_args(argv)
    if args.lists is None and args.root is None:
        ap.error("give --lists and/or --root")
    if args.lists is not None:
        report(official_test_split(args.lists), f"official test list ({args.lists})")
    if args.root is not None:
        report(args.root, f"dataset root {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
