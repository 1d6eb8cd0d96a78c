"""Prepared cache (SPEC §3.3): every image decoded and resized once into a uint8 memmap.

A cache lives in ``CACHE_DIR/s{size}-{key}/`` where ``key`` hashes what it was built from
(label file, split lists, the image list with sizes and mtimes, size, format version):

    images.npy   uint8 (N, size, size), opened with mmap_mode="r"
    content.json the SHA-256 of every chunk of ``CHUNK`` rows of images.npy, written at build
                 time: a chunk is checked the first time one of its rows is read (and a sample
                 of chunks when the cache is found for a run), so pixels changed in place
                 after the build are refused, never trained on
    labels.npy   float32 (N, 14)
    index.txt    the N image names, one per line (row order of the arrays)
    meta.json    the inputs behind the key, for people (and the host that built it)
    tables.csv   the release's rows (image, patient, view, age, sex, official split) with
                 each one's row in the arrays (-1: not in the cache): what a worker needs to
                 open the splits (``open_prepared``) without the raw tree or any PNG

It is built in a ``.tmp-*`` folder and renamed into place only when complete, so a killed
or failed prepare never leaves a folder that a reader would open. The space images.npy
needs is reserved first (``posix_fallocate``) and its rows are written with ordinary writes
(no memory map), so a full disk is one ``CacheSpaceError`` naming the device and the size,
never a SIGBUS. Images are decoded in threads of this process (PIL releases the GIL), so
building from a script without a ``__main__`` guard, stdin or a notebook works: no process
re-imports ``__main__``. The build holds a lock on
``CACHE_DIR`` (``mlbench.data.locks``): a second process (another driver on the same data)
waits for it and then opens the finished cache instead of building it again. A changed input
gives another key: the stale cache is not used, and a rebuild removes it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
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

CACHE_VERSION = 3  # 2: tables.csv (open_prepared); 3: content.json. Older ones are rebuilt
CHUNK = 64  # rows per decoding job and per checksum
CONTENT = "content.json"
SAMPLE_CHUNKS = 16  # chunks checked when a built cache is found for a run (besides first, last)


@dataclass
class Cache:
    """An opened prepared cache."""

    path: Path
    images: np.ndarray  # (N, S, S) uint8 memmap
    labels: np.ndarray  # (N, 14) float32
    row: pd.Series  # image name -> row
    meta: dict
    tables: pd.DataFrame | None = None  # tables.csv (caches built before it: None)
    digests: list[str] | None = None  # content.json: SHA-256 per CHUNK rows
    verified: set[int] = field(default_factory=set)  # chunks checked in this process
    broken: str | None = None  # why images.npy could not be mapped again (a worker process)

    def __getstate__(self) -> dict:
        # DataLoader workers started by spawn pickle the dataset: send the path, not the pixels
        return {k: v for k, v in self.__dict__.items() if k != "images"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        # checked as when opened: a file truncated since is named, not "mmap length ...";
        # said at the first read, where a DataLoader passes it on (a worker that fails to
        # unpickle its dataset dies with a traceback instead)
        try:
            self.images = _images(self.path, len(self.row))
        except CacheError as exc:
            self.images, self.broken = None, str(exc)

    def image(self, row: int) -> np.ndarray:
        """Row ``row`` of images.npy, copied out of the memory map; its chunk's checksum is
        checked the first time (``CacheError`` when the pixels were changed after the build,
        or the file was truncated since it was opened: a read past its end through the map
        would be a SIGBUS, in a DataLoader worker "insufficient shared memory")."""
        if self.broken is not None:
            raise CacheError(self.broken)
        chunk = int(row) // CHUNK
        if chunk not in self.verified:
            self.check_chunk(chunk)
        self._check_size(int(row))
        return np.array(self.images[row])

    @cached_property
    def _npy(self) -> str:
        return str(self.path / "images.npy")

    def _check_size(self, row: int) -> None:
        """``CacheError`` when images.npy is too short to hold row ``row`` (one ``stat``)."""
        npy = self._npy
        end = getattr(self.images, "offset", 0) + (row + 1) * self.images.strides[0]
        try:
            have = os.stat(npy).st_size
        except OSError as exc:
            raise CacheError(f"the prepared cache {npy} cannot be read ({exc.strerror or exc}); "
                             f"{_rebuild_fix(self.path)}") from None
        if have < end:
            raise CacheError(f"the prepared cache {npy} was truncated while in use ({have:,} "
                             f"bytes, row {row} ends at {end:,}); {_rebuild_fix(self.path)}")

    def check_chunk(self, chunk: int) -> None:
        """Compare chunk ``chunk`` of images.npy with its checksum in content.json."""
        if self.digests is not None:
            self._check_size(min((chunk + 1) * CHUNK, len(self.images)) - 1)
            rows = np.ascontiguousarray(self.images[chunk * CHUNK:(chunk + 1) * CHUNK])
            if hashlib.sha256(memoryview(rows).cast("B")).hexdigest() != self.digests[chunk]:
                first = chunk * CHUNK
                raise CacheError(
                    f"the prepared cache {self.path / 'images.npy'} was changed after it was "
                    f"built (rows {first}-{first + len(rows) - 1} do not match their checksum "
                    f"in {CONTENT}); {_rebuild_fix(self.path)}")
        self.verified.add(chunk)

    def check_sample(self, n: int | None = None, seed: int = 0) -> None:
        """Check the first and last chunk and ``n`` others drawn at random (default
        ``SAMPLE_CHUNKS``; cheap: a cache changed as a whole, say inverted, is refused before
        any run starts)."""
        n = SAMPLE_CHUNKS if n is None else n
        total = len(self.digests or ())
        if total:
            rng = np.random.default_rng(seed)
            picks = {0, total - 1, *rng.choice(total, min(n, total), replace=False).tolist()}
            for chunk in sorted(picks):
                self.check_chunk(chunk)

    def check_all(self) -> None:
        """Check every chunk (a full read of images.npy)."""
        for chunk in range(len(self.digests or ())):
            self.check_chunk(chunk)


class CorruptImageError(DatasetError):
    """Images that could not be decoded while preparing a cache."""


class CacheError(DatasetError):
    """A built cache that is not what it was built as: truncated, or its pixels changed.

    One line naming the file and the fix, also when a DataLoader worker process met it:
    the loader raises it again in the run's process as "Caught CacheError in DataLoader
    worker process N." plus the worker's traceback, from which the line is taken back."""

    def __init__(self, message: str = ""):
        text = str(message)
        if text.startswith("Caught ") and "CacheError: " in text:  # re-raised by a loader
            text = text.rpartition("CacheError: ")[2].strip().splitlines()[0]
        super().__init__(text)


class CacheSpaceError(OSError):
    """No room on the disk for the cache being built (one line: device, size, fix)."""


_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _rebuild_fix(path: Path) -> str:
    return (f"delete the folder {path} and run again: the cache is built anew from the "
            "images (or build it now: python -m mlbench data prepare ROOT --size N)")


def _device(path: Path) -> str:
    """The mount point holding ``path`` and its device, as /proc/self/mounts names them."""
    path = path.resolve()
    mount = path
    while mount != mount.parent and os.stat(mount.parent).st_dev == os.stat(mount).st_dev:
        mount = mount.parent
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            source, where, kind = (line.split() + ["", "", ""])[:3]
            if where == str(mount):
                return f"{mount} ({source}, {kind})"
    except OSError:
        pass
    return str(mount)


def _gb(n: int) -> str:
    return (f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB" if n >= 1e7
            else f"{n / 1e3:.0f} kB")


def _space_error(where: Path, need: int, exc: OSError) -> CacheSpaceError:
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = -1
    have = f", {_gb(free)} free" if free >= 0 else ""
    return CacheSpaceError(
        f"no room for the prepared cache on {_device(where)}: it needs {_gb(need)} in "
        f"{where}{have} ({exc.strerror or exc}); free space there, or put the cache on "
        "another disk with dataset.cache_dir (--set dataset.cache_dir=/path; cache_dir= for "
        "ChestXray14, --cache-dir for data prepare)")


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


def _decode(paths: list[str], size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Rows for ``paths`` (uint8 (n, size, size)) and the (path, error) of bad images."""
    out = np.zeros((len(paths), size, size), np.uint8)
    bad = []
    for i, p in enumerate(paths):
        try:
            out[i] = load_resized(p, size)
        except Exception as exc:  # any decoder failure is a corrupt file, reported together
            bad.append((p, f"{type(exc).__name__}: {exc}"))
    return out, bad


def _decoded(jobs: list[list[str]], size: int, workers: int):
    """The decoded chunks in order: in this thread (1 worker) or in ``workers`` threads
    (PIL's decoder and resize release the GIL), at most two chunks per thread ahead."""
    if workers <= 1:
        for paths in jobs:
            yield _decode(paths, size)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mlbench-prepare")
    try:
        ahead = []
        for paths in jobs:
            ahead.append(pool.submit(_decode, paths, size))
            if len(ahead) >= 2 * workers:
                yield ahead.pop(0).result()
        for fut in ahead:
            yield fut.result()
    finally:  # Ctrl-C, SIGTERM, an error: the chunks not started are dropped
        pool.shutdown(wait=False, cancel_futures=True)


def _reserve(npy: Path, shape: tuple[int, int, int]) -> tuple[int, int]:
    """Create images.npy with its header and its whole size reserved on the disk; return the
    open file descriptor and the offset of row 0."""
    fd = os.open(npy, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    need = 0
    try:
        with open(fd, "wb", closefd=False) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            offset = f.tell()
        need = offset + int(np.prod(shape))
        try:
            os.posix_fallocate(fd, 0, need)
        except OSError as exc:
            if exc.errno in _SPACE:
                raise
            os.ftruncate(fd, need)  # no reservation here (the filesystem cannot): the writes
            # below report a full disk as an OSError all the same
        return fd, offset
    except OSError as exc:
        os.close(fd)
        if exc.errno in _SPACE:
            raise _space_error(npy.parent.parent, need or int(np.prod(shape)), exc) from None
        raise


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


def _images(path: Path, count: int) -> np.ndarray:
    """images.npy memory-mapped, after checking that the file holds the rows its header
    promises (a truncated file is named, not "mmap length is greater than file size")."""
    npy = path / "images.npy"
    try:
        with open(npy, "rb") as f:
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(f)]
            shape, _, dtype = read(f)
            offset = f.tell()
    except (ValueError, KeyError) as exc:
        raise CacheError(f"the prepared cache {npy} is damaged ({exc}); "
                         f"{_rebuild_fix(path)}") from None
    want = offset + int(np.prod(shape)) * dtype.itemsize
    have = npy.stat().st_size
    if have != want or shape[:1] != (count,):
        what = "truncated" if have < want else "not the size its header gives"
        raise CacheError(f"the prepared cache {npy} is {what} ({have:,} of {want:,} bytes, "
                         f"{count} images listed in index.txt); {_rebuild_fix(path)}")
    return np.load(npy, mmap_mode="r")


def _open(path: Path) -> Cache:
    names = (path / "index.txt").read_text().splitlines()
    meta = json.loads((path / "meta.json").read_text())
    tables = None
    if (path / "tables.csv").is_file():
        tables = pd.read_csv(path / "tables.csv", dtype={"image": str, "view": str, "sex": str,
                                                          "official": str})
    images = _images(path, len(names))
    digests = None
    if (path / CONTENT).is_file():
        content = json.loads((path / CONTENT).read_text())
        digests = list(content["chunks"])
        if content.get("rows_per_chunk") != CHUNK or len(digests) != -(-len(names) // CHUNK):
            raise CacheError(f"the checksums {path / CONTENT} do not describe "
                             f"{path / 'images.npy'}; {_rebuild_fix(path)}")
    return Cache(
        path=path,
        images=images,
        labels=np.load(path / "labels.npy"),
        row=pd.Series(np.arange(len(names)), index=pd.Index(names)),
        meta=meta,
        tables=tables,
        digests=digests,
    )


def open_prepared(path: str | os.PathLike) -> Cache:
    """Open a prepared cache folder read-only by itself: no dataset root, no PNG looked at.

    What a worker does with the folder that ``prepare_cache`` returned to the driver.

    Raises:
        FileNotFoundError: not a complete cache folder, or one built before ``tables.csv``
            or ``content.json`` (prepare it again).
        CacheError: images.npy truncated (its pixels are checked chunk by chunk as they
            are read: ``Cache.image``).
    """
    path = Path(path)
    need = ("images.npy", "labels.npy", "index.txt", "meta.json", "tables.csv", CONTENT)
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
    in ``workers`` threads (default: all CPUs, 1 = in this thread). A cache found built is
    checked first: its size, and the checksums of a sample of its chunks.

    Raises:
        CorruptImageError: images that fail to decode (all listed, nothing is written).
        CacheSpaceError: no room on the disk (nothing is left behind).
        CacheError: the cache found is truncated or its pixels were changed.
    """
    tables, listed, sources, final = locate_cache(root, size, cache_dir)
    if final.is_dir() and not force:
        return _checked(final)
    final.parent.mkdir(parents=True, exist_ok=True)

    def waiting() -> None:
        if progress:
            tqdm.write(f"waiting for another process that is building the prepared cache in "
                       f"{final.parent}")

    # one builder at a time per cache folder: a second driver waits, then reuses the cache
    with folder_lock(final.parent, on_wait=waiting):
        if final.is_dir() and not force:
            return _checked(final)
        build_cache(tables, listed, sources, final, size, workers, force, progress)
    return final


def _checked(path: Path) -> Path:
    _open(path).check_sample()
    return path


def build_cache(tables: ReleaseTables, listed: dict, sources: dict, final: Path, size: int,
           workers: int | None, force: bool, progress: bool) -> None:
    """Build the cache ``final`` (the caller holds the folder lock).

    Raises:
        CacheSpaceError: the disk is full (checked before any image is decoded: the whole
            images.npy is reserved first); the temporary build is removed.
    """
    _remove_dead_tmp(final.parent)
    tmp = final.parent / tmp_cache_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    need = 0
    try:
        names = [n for n in tables.meta.image if n in listed]
        paths = [str(listed[n]) for n in names]
        jobs = [paths[s : s + CHUNK] for s in range(0, len(paths), CHUNK)]
        workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
        bad: list[tuple[str, str]] = []
        digests: list[str] = []
        t0 = time.perf_counter()
        fd, offset = _reserve(tmp / "images.npy", (len(names), size, size))
        need = offset + len(names) * size * size
        bar = tqdm(total=len(paths), desc=f"prepare {size}px", unit="img", disable=not progress)
        try:
            pos = offset
            for rows, res in _decoded(jobs, size, workers):
                data = memoryview(rows).cast("B")
                digests.append(hashlib.sha256(data).hexdigest())
                while data:  # ordinary writes: a full disk is an OSError, never a SIGBUS
                    done = os.pwrite(fd, data, pos)
                    data, pos = data[done:], pos + done
                bad += res
                bar.update(len(rows))
            os.fsync(fd)
        finally:
            os.close(fd)
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
        (tmp / CONTENT).write_text(json.dumps(
            {"algorithm": "sha256", "rows_per_chunk": CHUNK, "rows": len(names),
             "chunks": digests}, indent=0))
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
    except OSError as exc:
        if exc.errno in _SPACE and not isinstance(exc, CacheSpaceError):
            raise _space_error(final.parent, need, exc) from None
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
