"""Speed of the comparison report and of LIME explanations.

Usage:
  python benchmarks/bench_report.py prepare WORK   three 5-fold runs on ~800 synthetic photos
  python benchmarks/bench_report.py report WORK    compare them: time of each step, 3 times
  python benchmarks/bench_report.py lime WORK      LIME on real photos, per preset and samples

prepare: draws 1,000 synthetic photos (about 800 in train/) and trains cnn-fast (3 epochs:
the report's speed does not depend on the CNN's accuracy), svm-study and rf-study with
--cv 5, so every train/ photo is held out once. lime: trains each preset on
../shared/data/mango-grading with --val-fraction 0.2 (one model, as a deployed run) and
explains held-out photos of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import data_dir, machine

MANGOGRADE = str(Path(sys.executable).parent / "mangograde")  # this environment's command
PRESETS = {"cnn-fast": ["--set", "epochs=3"], "svm-study": [], "rf-study": []}


def train(data: list[str], preset: str, out: Path, split: list[str], extra: list[str]) -> None:
    if (out / "predictions.csv").is_file():
        return
    command = [MANGOGRADE, "train", *data, "--preset", preset, *split, "--out", str(out)]
    subprocess.run([*command, "--overwrite", "--quiet", *extra], check=True)


def prepare(work: Path) -> None:
    from mangograde.data.synth import synthesize

    root = work / "synth"
    if not (root / "train.csv").is_file():
        synthesize(root, n=1000, size=256, seed=0)
    data = [str(root / "train"), "--labels", str(root / "train.csv")]
    data += ["--groups", str(root / "groups.csv")]
    for preset, extra in PRESETS.items():
        start = time.perf_counter()
        train(data, preset, work / preset, ["--cv", "5"], extra)
        print(f"{preset}: trained in {time.perf_counter() - start:.0f} s")


def report(work: Path) -> None:
    from mangograde.report.html import render_report
    from mangograde.workflows.compare import compare_runs

    runs = [work / p for p in PRESETS]
    for attempt in range(3):
        start = time.perf_counter()
        comparison = compare_runs(runs, progress=False)
        compared = time.perf_counter() - start
        render_report(comparison, work / "report.html")
        total = time.perf_counter() - start
        held = [s.evaluation["n_photos"] for s in comparison.runs]
        print(
            f"run {attempt}: {held} held-out photos; compare {compared:.1f} s "
            f"+ render {total - compared:.1f} s = {total:.1f} s"
        )
    size = (work / "report.html").stat().st_size
    print(f"report: {size / 1e6:.1f} MB; {machine()}")


def lime(work: Path) -> None:
    from mangograde.explain import explain
    from mangograde.images import load_images
    from mangograde.runs import open_predictor, open_run

    root = data_dir("mango-grading")
    data = [str(root), "--groups", str(root / "fruit_groups.csv")]
    for preset in PRESETS:
        out = work / f"real-{preset}"
        train(data, preset, out, ["--val-fraction", "0.2"], [])
        run = open_run(out)
        predictor = open_predictor(run)
        ids = run.held_out.image_ids[:3]
        images = load_images([root / i for i in ids], predictor.geometry).arrays
        predictor.grade(images)  # warm: first-call costs (threads, kernels) are not LIME's
        for samples in (200, 500, 1000):
            seconds = []
            for image in images:
                start = time.perf_counter()
                explain(predictor, image, "lime", samples=samples, seed=0, progress=False)
                seconds.append(time.perf_counter() - start)
            print(
                f"{preset}: LIME {samples} samples, median {np.median(seconds):.1f} s "
                f"(of {len(seconds)} photos: {', '.join(f'{s:.1f}' for s in seconds)})"
            )
    print(machine())


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("prepare", "report", "lime"):
        sys.exit(__doc__)
    work = Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    {"prepare": prepare, "report": report, "lime": lime}[sys.argv[1]](work)
