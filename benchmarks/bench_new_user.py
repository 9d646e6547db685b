"""Issues 28 and 29, measured on mango-grading: how far apart the difference hashes of
different fruits and of one fruit's views are (the near-duplicate threshold), how much disk
the decode cache takes for one load and a subset, and what reading a photo's header costs
beside decoding it (serve's pixel budget).

    python benchmarks/bench_new_user.py [--data ../shared/data/mango-grading]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mangograde.data import load_dataset
from mangograde.images import ImageCache, Resize, load_images
from mangograde.images.decode import decode, decoded_pixels
from mangograde.images.similar import NEAR_SHARE, dhash, near_duplicates


def hash_distances(arrays: np.ndarray, groups: np.ndarray, side: int) -> None:
    words = dhash(arrays, side)
    bits = np.unpackbits(words.view(np.uint8), axis=1).astype(bool)
    far = (bits[:, None, :] != bits[None, :, :]).mean(axis=-1)
    upper = np.triu_indices(len(bits), 1)
    same = (groups[:, None] == groups[None, :])[upper]
    distance = far[upper]
    print(
        f"{side * side} bits: views of one fruit {distance[same].min():.3f} min, "
        f"{np.median(distance[same]):.3f} median; different fruits {distance[~same].min():.3f} "
        f"min; pairs of different fruits within {NEAR_SHARE:.0%}: "
        f"{int((distance[~same] <= NEAR_SHARE).sum())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mango-grading"))
    args = parser.parse_args()
    dataset = load_dataset(args.data, groups=args.data / "fruit_groups.csv")
    groups = np.asarray(dataset.groups)
    arrays = load_images(dataset.paths, Resize(64), None, progress=False).arrays
    for side in (8, 16):
        hash_distances(arrays, groups, side)
    started = time.perf_counter()
    sets = near_duplicates(arrays)
    print(f"near-duplicate sets: {len(sets)} ({time.perf_counter() - started:.2f} s)")

    folder = Path(tempfile.mkdtemp())
    try:
        cache = ImageCache(folder)
        load_images(dataset.paths, Resize(128), cache, progress=False)
        pixels = len(dataset) * 128 * 128 * 3
        on_disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"cache after one load: {on_disk / 1e6:.1f} MB, {on_disk / pixels:.3f} x the pixels")
        started = time.perf_counter()
        load_images(dataset.paths[: len(dataset) // 2], Resize(128), cache, progress=False)
        again = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"half of them again: {time.perf_counter() - started:.3f} s, {again / 1e6:.1f} MB")
    finally:
        shutil.rmtree(folder)

    paths = list(dataset.paths[:60])
    data = [p.read_bytes() for p in paths]
    geometry = Resize(224)
    started = time.perf_counter()
    for path, raw in zip(paths, data, strict=True):
        decoded_pixels(path, geometry, raw)
    header = time.perf_counter() - started
    started = time.perf_counter()
    for path, raw in zip(paths, data, strict=True):
        decode(path, geometry, raw)
    whole = time.perf_counter() - started
    print(f"header {1000 * header / 60:.2f} ms, decode {1000 * whole / 60:.2f} ms a photo: "
          f"ratio {header / whole:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
