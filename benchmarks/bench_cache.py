"""Loading a dataset cold (empty cache) and again warm, in one process.

    python benchmarks/bench_cache.py [--data mango-grading|aicup-sample] [--size 256]

Cold: every photo decoded, resized and written to a fresh cache. Warm: the same call
again, every photo read back from the cache, in this process and in a fresh one (as a
second run would). Prints the times and the ratios; each load includes finding the
photos and reading the labels.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from _common import data_dir, machine
from mangograde.data import load_dataset
from mangograde.images import ImageCache, Resize, load_dataset_images


def dataset(name: str):
    root = data_dir(name)
    if name == "aicup-sample":
        return load_dataset(root / "sample_image", labels=root / "Sample_Label.csv")
    return load_dataset(root, groups=root / "fruit_groups.csv")


def timed_load(name: str, size: int, cache: ImageCache):
    start = time.perf_counter()
    ds = dataset(name)
    _, loaded = load_dataset_images(ds, Resize(size), cache, progress=False)
    return time.perf_counter() - start, loaded


def warm_in_fresh_process(name: str, size: int, cache_dir: str) -> float:
    command = [sys.executable, __file__, "--data", name, "--size", str(size), "--warm-only",
               cache_dir]  # fmt: skip
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="mango-grading", choices=["mango-grading", "aicup-sample"]
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-only", metavar="CACHE_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_only:
        seconds, loaded = timed_load(args.data, args.size, ImageCache(args.warm_only))
        assert loaded.cache_hits == len(loaded.kept)
        print(seconds)
        return
    cold, warm, fresh = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, first = timed_load(args.data, args.size, ImageCache(tmp))
            cold.append(seconds)
            seconds, second = timed_load(args.data, args.size, ImageCache(tmp))
            warm.append(seconds)
            assert second.cache_hits == len(first.kept)
            assert np.array_equal(first.arrays, second.arrays)
            fresh.append(warm_in_fresh_process(args.data, args.size, tmp))
    c, w, f = (statistics.median(t) for t in (cold, warm, fresh))
    print(f"machine: {machine()}")
    print(f"{args.data}: {len(first.kept)} photos at {args.size}x{args.size}, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"  cold (decode + write cache):     {c:.3f} s")
    print(f"  warm, same process:              {w:.3f} s  ({c / w:.1f}x faster)")
    print(f"  warm, fresh process (a 2nd run): {f:.3f} s  ({c / f:.1f}x faster)")


if __name__ == "__main__":
    main()
