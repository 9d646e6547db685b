"""Load many photos through the cache, in parallel, collecting every bad file."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..basics.errors import BadImagesError, plural
from ..basics.progress import track
from ..data import Dataset
from .cache import ImageCache
from .decode import BadImage, ImageDecodeError, decode
from .geometry import Geometry


@dataclass
class LoadedImages:
    """Decoded photos: ``arrays[j]`` is the photo at input position ``kept[j]``."""

    arrays: np.ndarray
    kept: np.ndarray
    bad: list[BadImage] = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0
    notices: list[str] = field(default_factory=list)


def bad_images_message(bad: Sequence[BadImage], skipping: bool = False) -> str:
    """Every unreadable photo; the advice to --skip-bad only where it is not on yet."""
    lines = "\n".join(f"  - {b.path}: {b.reason}" for b in bad)
    advice = (
        "Fix or replace them."
        if skipping
        else "Fix or remove them, or pass --skip-bad to leave them out (each one is listed)."
    )
    return f"{plural(len(bad), 'photo')} cannot be read:\n{lines}\n{advice}"


def default_workers() -> int:
    # Pillow releases the GIL while decoding and resizing, so threads scale with cores.
    return max(1, min(8, os.cpu_count() or 1))


def _cache_keys(
    paths: Sequence[str | Path], geometry: Geometry, cache: ImageCache | None
) -> list[str | None]:
    """Each photo's cache key; None without a cache or for a file that cannot be read
    (``decode`` then reports it)."""
    keys: list[str | None] = []
    for path in paths:
        try:
            keys.append(cache.key(path, geometry.key) if cache is not None else None)
        except OSError:
            keys.append(None)
    return keys


def load_images(
    paths: Sequence[str | Path],
    geometry: Geometry,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> LoadedImages:
    """Decode ``paths`` with ``geometry`` into one ``(n, H, W, 3)`` uint8 array.

    With a cache, a list of photos loaded before comes back as one memory-mapped pack.
    Every distinct list gets its own pack, so load a whole dataset once and index the
    array for folds, rather than loading each fold's photos.

    Raises
    ------
    BadImagesError
        Listing every unreadable photo, unless ``skip_bad`` is set; then they are
        returned in ``bad`` and left out of ``arrays``.
    """
    start = time.perf_counter()
    keys = _cache_keys(paths, geometry, cache)
    packable = cache is not None and len(paths) > 0 and all(keys)
    if packable:
        packed = cache.get_pack(paths, keys, geometry.key, geometry.shape)
        if packed is not None:
            seconds = time.perf_counter() - start
            return LoadedImages(packed, np.arange(len(paths)), [], seconds, len(paths))
    out = np.empty((len(paths), *geometry.shape), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    bad: list[BadImage] = []
    hits = 0

    def one(i: int) -> bool:
        key = keys[i]
        if key and cache.get(key, geometry.shape, out=out[i]) is not None:
            return True
        out[i] = decode(paths[i], geometry)
        if key:
            cache.put(key, out[i])
        return False

    def guarded(i: int) -> tuple[int, bool | BadImage]:
        try:
            return i, one(i)
        except ImageDecodeError as exc:
            return i, BadImage(exc.path, exc.reason)

    n_workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = pool.map(guarded, range(len(paths)))
        for i, result in track(results, len(paths), "Decoding photos", progress, every=1000):
            if isinstance(result, BadImage):
                bad.append(result)
            else:
                ok[i] = True
                hits += int(result)
    if bad and not skip_bad:
        raise BadImagesError(bad_images_message(bad), bad)
    kept = np.flatnonzero(ok)
    notices = [cache.write_error] if cache is not None and cache.write_error else []
    if bad:
        every = "; ".join(f"{b.path} ({b.reason})" for b in bad)
        notices.append(f"Skipped {plural(len(bad), 'bad photo')} (--skip-bad): {every}")
    if packable and not bad and hits < len(paths):  # photos no pack holds yet
        cache.put_pack(paths, keys, geometry.key, out)
    if cache is not None and cache.written:
        cache.trim()
    arrays = out if len(kept) == len(paths) else out[kept]
    return LoadedImages(arrays, kept, bad, time.perf_counter() - start, hits, notices)


def load_dataset_images(
    dataset: Dataset,
    geometry: Geometry,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> tuple[Dataset, LoadedImages]:
    """Decode a dataset's photos; the returned dataset holds only the photos kept."""
    loaded = load_images(dataset.paths, geometry, cache, skip_bad, workers, progress)
    return dataset.subset(loaded.kept), loaded
