"""Cache read speed vs decoding full-size PNGs, on the same images.

    python -m tools.data_speed --images 64 --png-size 1024 --size 256

Writes a CXR14-sim folder with ``--png-size`` PNGs (1024 like the NIH films), prepares the
cache at ``--size``, then times a full pass of each way of getting (1, size, size) uint8 images:
decode + resize every PNG (what a naive loader does each epoch) and ``ChestXray14(image_size=...)``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlbench.data import ChestXray14, generate_sim, prepare_cache
from mlbench.data.cache import load_resized


def _rate(fn, n: int, min_s: float = 1.0) -> float:
    """Images per second of ``fn(i)`` over passes of ``range(n)``, at least ``min_s`` long."""
    done, t0 = 0, time.perf_counter()
    while True:
        for i in range(n):
            fn(i)
        done += n
        if (dt := time.perf_counter() - t0) >= min_s:
            return done / dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--png-size", type=int, default=1024)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--min-seconds", type=float, default=1.0, help="least time per measurement")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_sim(
            Path(tmp) / "sim", images=args.images, size=args.png_size, progress=False
        )
        prepare_cache(root, args.size, workers=1, progress=False)
        ds = ChestXray14(root, "train_val", image_size=args.size)
        paths = [root / "images" / name for name in ds.metadata.image]
        decode = _rate(lambda i: load_resized(paths[i], args.size), len(ds), args.min_seconds)
        cached = _rate(ds.image, len(ds), args.min_seconds)
        item = _rate(ds.__getitem__, len(ds), args.min_seconds)
    print(f"{len(ds)} images, {args.png_size}px PNG -> {args.size}px")
    print(f"decode+resize PNG : {decode:10.0f} img/s")
    print(f"cache ds.image(i)  : {cached:10.0f} img/s  ({cached / decode:.0f}x)")
    print(f"cache ds[i] float  : {item:10.0f} img/s  ({item / decode:.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
