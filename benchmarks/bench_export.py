"""ONNX exports against PyTorch eager, in one process, on a cnn-fast run of mango-grading.

    python benchmarks/bench_export.py RUN [--repeats 3]

RUN: a cnn-fast run trained with `--cv 5 --only-fold 0` (its held-out photos are fold 0).
Exports fp32 and int8 (calibrated on 64 of the run's training photos), then:
- photos/s of PyTorch eager (the run's own grader), ONNX Runtime fp32 and int8, at batch 1
  and 32, alternating in this process (same threads, same decoded photos);
- accuracy on the held-out photos of each;
- `mangograde predict EXPORT PHOTO` start-up (process start to the photo graded);
- the size on disk of a slim venv (the [grade] packages) next to this one.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def _held_out(run: Path) -> tuple[list[Path], list[str], list[Path]]:
    root = data_dir("mango-grading")
    with open(run / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    held = [r for r in rows if r["fold"] == "0"]
    everything = sorted(p for p in root.rglob("*.jpg"))
    held_names = {r["image"] for r in held}
    training = [p for p in everything if str(p.relative_to(root)) not in held_names]
    return [root / r["image"] for r in held], [r["true"] for r in held], training


def _rate(grade, photos: np.ndarray, batch: int, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(photos), batch):
            grade(photos[i : i + batch])
        best = max(best, len(photos) / (time.perf_counter() - start))
    return best


def _du(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from mangograde.graders import ExportedGrader
    from mangograde.images import ImageCache, load_images
    from mangograde.runs import open_predictor
    from mangograde.workflows.export import export_run

    held, truth, training = _held_out(args.run)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    cache = ImageCache(work / "cache")
    start = time.perf_counter()
    export_run(args.run, work / "fp32", cache=cache)
    fp32_s = time.perf_counter() - start
    start = time.perf_counter()
    calibration = training[:: max(1, len(training) // 64)][:64]
    export_run(args.run, work / "int8", int8=True, calibration=calibration, cache=cache)
    int8_s = time.perf_counter() - start

    torch_grader = open_predictor(args.run)
    graders = {
        "PyTorch eager": torch_grader,
        "ONNX Runtime fp32": ExportedGrader(work / "fp32"),
        "ONNX Runtime int8": ExportedGrader(work / "int8"),
    }
    photos = load_images(held, torch_grader.geometry, cache).arrays
    codes = np.array([torch_grader.grades.index(t) for t in truth])
    print(f"machine: {machine()}")
    print(f"run {args.run.name}: {len(photos)} held-out photos of fold 0; export fp32 "
          f"{fp32_s:.1f} s, int8 {int8_s:.1f} s (64 calibration photos)")  # fmt: skip
    rates: dict[tuple[str, int], float] = {}
    for batch in (1, 32):
        for _ in range(2):  # alternate, keep the best of each
            for name, grader in graders.items():
                rate = _rate(grader.grade, photos, batch, args.repeats)
                rates[name, batch] = max(rates.get((name, batch), 0.0), rate)
    for name, grader in graders.items():
        accuracy = float(np.mean(grader.predict(photos) == codes))
        line = ", ".join(f"batch {b}: {rates[name, b]:.1f} photos/s" for b in (1, 32))
        print(f"{name}: {line}; accuracy {accuracy:.3f}")
    for batch in (1, 32):
        eager = rates["PyTorch eager", batch]
        fp32, int8 = rates["ONNX Runtime fp32", batch], rates["ONNX Runtime int8", batch]
        print(f"batch {batch}: fp32 / eager {fp32 / eager:.2f}, int8 / fp32 {int8 / fp32:.2f}")

    one = held[0]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mangograde", "predict", str(work / "fp32"), str(one),
             "--out", str(work / "one.csv"), "--overwrite", "--quiet"],
            check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - start)
    print(f"predict on an export, one photo, whole process: median {statistics.median(times):.2f} "
          f"s (min {min(times):.2f})")  # fmt: skip

    slim = work / "slim"
    venv.create(slim, with_pip=True)
    subprocess.run([slim / "bin" / "python", "-m", "pip", "install", "-q", "numpy", "pillow",
                    "onnxruntime", "typer", "rich"], check=True)  # fmt: skip
    full = Path(sys.prefix)
    print(f"slim venv (numpy, pillow, onnxruntime, typer, rich): {_du(slim):.0f} MB; "
          f"this venv ({full}): {_du(full):.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
