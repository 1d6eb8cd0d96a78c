"""``python -m mlbench data prepare|sim``: the prepared cache of a dataset root, and the
CXR14-sim dataset (the data package loads when a sub-command runs, not when the parser is
built)."""

from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="prepare ChestX-ray14 caches, generate CXR14-sim")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    sub.required = True

    p = sub.add_parser("prepare", help="decode and resize every image once into the prepared cache")
    p.add_argument("root", help="dataset root in the NIH layout")
    p.add_argument("--size", type=int, default=224,
                   help="image side in pixels; use the suite's dataset.image_size (default 224, "
                   "the suite default), or the run prepares its own cache")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: all CPUs)")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default ROOT/.mlbench_cache, the only one `run` reads)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("sim", help="write the CXR14-sim dataset in the NIH layout")
    s.add_argument("out", help="output folder")
    s.add_argument("--images", type=int, default=2000, help="number of images (default 2000)")
    s.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    s.add_argument("--test-fraction", type=float, default=None,
                   help="the test split's share of the folder (default 0.2); the training side "
                   "keeps its images and positives, the test split is drawn on top")
    s.add_argument("--sick-preference", type=float, default=None,
                   help="how strongly the test split prefers sick patients (default 2.0, as "
                   "the official test list is sicker; 0: none)")
    s.add_argument("--force", action="store_true",
                   help="replace a CXR14-sim of other parameters, or write into a non-empty "
                   "folder; a label table that CXR14-sim did not write is never overwritten")
    s.set_defaults(func=_cmd_sim)


def _cmd_prepare(args) -> int:
    from mlbench.data import prepare_cache

    t0 = time.perf_counter()
    try:
        path = prepare_cache(
            args.root, args.size, workers=args.workers, cache_dir=args.cache_dir, force=args.force
        )
    except (OSError, ValueError) as exc:  # bad arguments or dataset: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"cache ready: {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_sim(args) -> int:
    from mlbench.data import generate_sim
    from mlbench.data.sim import is_complete, sim_params

    t0 = time.perf_counter()
    knobs = {"test_fraction": args.test_fraction, "sick_preference": args.sick_preference}
    if is_complete(args.out, sim_params(args.images, args.size, args.seed, **knobs)):
        print(f"CXR14-sim: {args.out} already holds these {args.images} images of "
              f"{args.size}px (seed {args.seed}); nothing to do")
        return 0
    try:
        out = generate_sim(args.out, images=args.images, size=args.size, seed=args.seed,
                           force=args.force, **knobs)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    n = len((out / "Data_Entry_2017_v2020.csv").read_text().splitlines()) - 1
    print(
        f"CXR14-sim: {n} images of {args.size}px in {out} ({dt:.1f} s, {n / dt:.0f} img/s)"
    )
    return 0
