"""Prepared cache (SPEC §3.3): every image decoded and resized once into a uint8 memmap.

A cache lives in ``CACHE_DIR/s{size}-{key}/`` where ``key`` hashes what it was built from
(label file, split lists, the image list with sizes and mtimes, size, format version):

    images.npy   uint8 (N, size, size), opened with mmap_mode="r"
    labels.npy   float32 (N, 14)
    index.txt    the N image names, one per line (row order of the arrays)
    meta.json    the inputs behind the key, for people (and the host that built it)
    tables.csv   the release's rows (image, patient, view, age, sex, official split) with
                 each one's row in the arrays (-1: not in the cache): what a worker needs to
                 open the splits (``open_prepared``) without the raw tree or any PNG

It is built in a ``.tmp-*`` folder and renamed into place only when complete, so a killed
or failed prepare never leaves a folder that a reader would open. The build holds a lock on
``CACHE_DIR`` (``mlbench.data.locks``): a second process (another driver on the same data)
waits for it and then opens the finished cache instead of building it again. A changed input
gives another key: the stale cache is not used, and a rebuild removes it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from mlbench.data.locks import folder_lock
from mlbench.data.release import (
    DatasetError,
    ReleaseTables,
    decode_png,
    index_images,
    repair_hint,
)

CACHE_VERSION = 2  # 2: tables.csv (open_prepared); a version-1 cache is rebuilt
_CHUNK = 64


@dataclass
class Cache:
    """An opened prepared cache."""

    path: Path
    images: np.ndarray  # (N, S, S) uint8 memmap
    labels: np.ndarray  # (N, 14) float32
    row: pd.Series  # image name -> row
    meta: dict
    tables: pd.DataFrame | None = None  # tables.csv (caches built before it: None)

    def __getstate__(self) -> dict:
        # DataLoader workers started by spawn pickle the dataset: send the path, not the pixels
        return {k: v for k, v in self.__dict__.items() if k != "images"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.images = np.load(self.path / "images.npy", mmap_mode="r")


class CorruptImageError(DatasetError):
    """Images that could not be decoded while preparing a cache."""


def default_cache_dir(root: str | os.PathLike) -> Path:
    return Path(root) / ".mlbench_cache"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sources(tables: ReleaseTables, files: dict[str, Path], size: int) -> dict:
    """What a cache is built from; its hash is the cache key."""
    h = hashlib.sha256()
    for name in sorted(files):
        st = files[name].stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {
        "version": CACHE_VERSION,
        "size": int(size),
        "label_file": {"name": tables.label_file.name, "sha256": _sha256(tables.label_file)},
        "split_files": {p.name: _sha256(p) for p in tables.split_files.values()},
        "images": {"count": len(files), "sha256_of_names_sizes_mtimes": h.hexdigest()},
    }


def _key(sources: dict) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:20]


def load_resized(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode a PNG, center-crop to square, resize (antialiased bilinear) to uint8 (size, size)."""
    arr = decode_png(path)
    h, w = arr.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        arr = arr[top : top + s, left : left + s]
    if arr.shape[0] != size:
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return arr


def _fill(npy: str, start: int, paths: list[str], size: int) -> list[tuple[str, str]]:
    """Write rows ``start:start+len(paths)`` of the memmap; return (path, error) of bad images."""
    out = np.load(npy, mmap_mode="r+")
    bad = []
    for i, p in enumerate(paths):
        try:
            out[start + i] = load_resized(p, size)
        except Exception as exc:  # any decoder failure is a corrupt file, reported together
            bad.append((p, f"{type(exc).__name__}: {exc}"))
    out.flush()
    return bad


def _pool(workers: int):
    """Decoding processes. Forked only from a single-threaded process: a fork taken while
    another thread holds a lock (a queue's, logging's) can leave a worker blocked for ever
    (seen: a pool worker stuck on its queue's lock, the build waiting on it at exit)."""
    forkable = "fork" in mp.get_all_start_methods() and threading.active_count() == 1
    return mp.get_context("fork" if forkable else "spawn").Pool(workers)


def tmp_cache_name(final: Path) -> str:
    """``.tmp-{cache}@{host}-{pid}``: whose build it is, so only its host judges it dead."""
    return f".tmp-{final.name}@{socket.gethostname()}-{os.getpid()}"


def _remove_dead_tmp(cache_dir: Path) -> None:
    """Remove the temporary builds of dead processes of this host. A build of another host
    (its pid means nothing here; it may be alive on a shared filesystem) is left alone;
    an old-style name without ``@host`` counts as this host's."""
    for tmp in cache_dir.glob(".tmp-*"):
        head, _, last = tmp.name.rpartition("-")
        pid = int(last) if last.isdigit() else 0
        if "@" in head and head.rpartition("@")[2] != socket.gethostname():
            continue  # another host's build: not ours to delete
        try:
            os.kill(pid, 0) if pid > 0 else None
            alive = pid > 0
        except OSError:
            alive = False
        if not alive:
            shutil.rmtree(tmp, ignore_errors=True)


def _open(path: Path) -> Cache:
    names = (path / "index.txt").read_text().splitlines()
    meta = json.loads((path / "meta.json").read_text())
    tables = None
    if (path / "tables.csv").is_file():
        tables = pd.read_csv(path / "tables.csv", dtype={"image": str, "view": str, "sex": str,
                                                          "official": str})
    return Cache(
        path=path,
        images=np.load(path / "images.npy", mmap_mode="r"),
        labels=np.load(path / "labels.npy"),
        row=pd.Series(np.arange(len(names)), index=pd.Index(names)),
        meta=meta,
        tables=tables,
    )


def open_prepared(path: str | os.PathLike) -> Cache:
    """Open a prepared cache folder read-only by itself: no dataset root, no PNG looked at.

    What a worker does with the folder that ``prepare_cache`` returned to the driver.

    Raises:
        FileNotFoundError: not a complete cache folder, or one built before ``tables.csv``
            (prepare it again).
    """
    path = Path(path)
    need = ("images.npy", "labels.npy", "index.txt", "meta.json", "tables.csv")
    lacking = [n for n in need if not (path / n).is_file()]
    if lacking:
        raise FileNotFoundError(f"{path} is not a complete prepared cache (no {lacking[0]}); "
                                "build it with `python -m mlbench data prepare ROOT --size N`")
    return _open(path)


def locate_cache(root, size, cache_dir) -> tuple[ReleaseTables, dict[str, Path], dict, Path]:
    """The release tables of ``root``, its listed images, their sources (what the cache key
    hashes) and the cache folder they give."""
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"Expected argument `size` to be an int >= 8 but got {size!r}")
    tables = ReleaseTables(root)
    files = index_images(tables.root)
    listed = {n: files[n] for n in tables.meta.image if n in files}
    sources = _sources(tables, listed, size)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(tables.root)
    return tables, listed, sources, cache_dir / f"s{size}-{_key(sources)}"


def prepare_cache(
    root: str | os.PathLike,
    size: int,
    *,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Build (or find up to date) the prepared cache of ``root`` at ``size``; return its folder.

    Every image listed in train_val_list.txt / test_list.txt that exists is decoded once,
    in ``workers`` processes (default: all CPUs, 1 = in this process).

    Raises:
        CorruptImageError: images that fail to decode (all listed, nothing is written).
    """
    tables, listed, sources, final = locate_cache(root, size, cache_dir)
    if final.is_dir() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)

    def waiting() -> None:
        if progress:
            tqdm.write(f"waiting for another process that is building the prepared cache in "
                       f"{final.parent}")

    # one builder at a time per cache folder: a second driver waits, then reuses the cache
    with folder_lock(final.parent, on_wait=waiting):
        if final.is_dir() and not force:
            return final
        build_cache(tables, listed, sources, final, size, workers, force, progress)
    return final


def build_cache(tables: ReleaseTables, listed: dict, sources: dict, final: Path, size: int,
           workers: int | None, force: bool, progress: bool) -> None:
    """Build the cache ``final`` (the caller holds the folder lock)."""
    _remove_dead_tmp(final.parent)
    tmp = final.parent / tmp_cache_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        names = [n for n in tables.meta.image if n in listed]
        paths = [str(listed[n]) for n in names]
        npy = str(tmp / "images.npy")
        np.lib.format.open_memmap(
            npy, mode="w+", dtype=np.uint8, shape=(len(names), size, size)
        ).flush()
        jobs = [(npy, s, paths[s : s + _CHUNK], size) for s in range(0, len(paths), _CHUNK)]
        workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
        bar = tqdm(total=len(paths), desc=f"prepare {size}px", unit="img", disable=not progress)
        bad: list[tuple[str, str]] = []
        t0 = time.perf_counter()
        if workers <= 1:
            results = (_fill(*job) for job in jobs)
            for job, res in zip(jobs, results, strict=True):
                bad += res
                bar.update(len(job[2]))
        else:
            with _pool(workers) as pool:
                for job, res in zip(jobs, pool.imap(_star_fill, jobs), strict=True):
                    bad += res
                    bar.update(len(job[2]))
                pool.close()  # workers leave through the queue's sentinel, not SIGTERM
                pool.join()
        bar.close()
        if bad:
            fix = repair_hint(tables.root, "Re-extract them from the NIH archives, or delete "
                              "them and leave them out with `dataset.missing: skip` in the "
                              "suite (--set dataset.missing=skip; missing='skip' for "
                              "ChestXray14)")
            raise CorruptImageError(
                f"{len(bad)} image(s) could not be decoded while preparing the cache, e.g. "
                + "; ".join(f"{p} ({e})" for p, e in bad[:5]) + f". {fix}."
            )
        keep = tables.meta.image.isin(listed).to_numpy()
        np.save(tmp / "labels.npy", tables.labels[keep])
        (tmp / "index.txt").write_text("".join(n + "\n" for n in names))
        cols = [c for c in ("image", "patient", "view", "age", "sex", "official")
                if c in tables.meta]
        rows = tables.meta[cols].assign(row=np.where(keep, np.cumsum(keep) - 1, -1))
        rows.to_csv(tmp / "tables.csv", index=False)
        info = dict(sources, root=str(tables.root), built_s=round(time.perf_counter() - t0, 3),
                    built_on=socket.gethostname())
        (tmp / "meta.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        if force and final.is_dir():
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)  # atomic: readers see a complete cache or none
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in final.parent.glob(f"s{size}-*"):  # same size, other inputs
        if stale != final and _built_here(stale):  # never another host's build
            shutil.rmtree(stale, ignore_errors=True)


def _built_here(path: Path) -> bool:
    """Whether this host built the cache at ``path`` (older caches, without the record, count
    as this host's)."""
    try:
        built_on = json.loads((path / "meta.json").read_text()).get("built_on")
    except (OSError, ValueError):
        return False  # unreadable: leave it to whoever made it
    return built_on in (None, socket.gethostname())


def _star_fill(job):
    return _fill(*job)


def load_or_prepare(
    root: str | os.PathLike,
    size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Cache:
    """Open the up-to-date cache of ``root`` at ``size``, preparing it first if needed."""
    return _open(prepare_cache(root, size, workers=workers, cache_dir=cache_dir))


def find_cache(root: str | os.PathLike, size: int, *, cache_dir=None) -> Path | None:
    """The up-to-date cache folder, or None if there is none (stale or never built)."""
    final = locate_cache(root, size, cache_dir)[3]
    return final if final.is_dir() else None
