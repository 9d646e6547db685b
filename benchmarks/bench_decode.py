"""Decode + resize to 256 x 256 of the aicup-sample photos: reduced-size decoding vs plain.

    python benchmarks/bench_decode.py [--repeats 5] [--size 256]

Both run single-threaded in this process, alternating, so the ratio holds when the
machine's speed drifts. Prints the median time per photo of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

from _common import data_dir, machine
from mangograde.images import Resize, decode, load_images


def plain(paths, size):
    return [np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths]


def reduced(paths, size):
    geometry = Resize(size)
    return [decode(p, geometry) for p in paths]


def loader(paths, size):
    """The library's loader as training uses it: reduced-size decoding on every core."""
    return list(load_images(paths, Resize(size), cache=None, progress=False).arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    paths = sorted((data_dir("aicup-sample") / "sample_image").glob("*.jpg"))
    runs = {"plain": plain, "reduced": reduced, "loader": loader}
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            out = fn(paths, args.size)
            times[name].append(time.perf_counter() - start)
    diff = np.mean(
        [
            np.abs(a.astype(int) - b).mean()
            for a, b in zip(
                plain(paths[:10], args.size), reduced(paths[:10], args.size), strict=True
            )
        ]
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {machine()}")
    print(f"{len(paths)} photos to {args.size}x{args.size}, median of {args.repeats} runs")
    for name in runs:
        print(f"  {name:8s} {med[name]:.3f} s  ({1000 * med[name] / len(paths):.1f} ms/photo)")
    print(f"  speed-up, one thread (plain / reduced): {med['plain'] / med['reduced']:.2f}x")
    print(f"  speed-up, loader on all cores (plain / loader): {med['plain'] / med['loader']:.2f}x")
    print(f"  mean absolute pixel difference (0-255): {diff:.2f}; shapes {out[0].shape}")


if __name__ == "__main__":
    main()
