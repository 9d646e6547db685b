"""Issue 27: a run trained on mango-grading, adapted to aicup-sample (another orchard and
camera) with a few labelled photos.

    python benchmarks/bench_adapt.py NAME=RUN [NAME=RUN ...] [--sizes 10,30,60] [--repeats 5]
        [--scratch-sizes 10,30,60] [--time-run RUN]

RUN: a parent trained on mango-grading with --groups (5 folds). For each size n and repeat
r: n of aicup-sample's 94 photos, stratified by grade (each photo its own fruit: the sample
has no fruit ids), are labelled; the other 94 - n are graded by
- the parent, unadapted (the mean of its fold models, as graded);
- the parent adapted on the n photos with ``mangograde adapt``'s own per-fold hook
  (``family.adapt_fold``, default settings; classical families keep the parent's photos);
- the family's recipe trained from scratch on the n photos (the parent's settings, one
  model: ``family.build`` and ``fit_fold``), for the sizes in --scratch-sizes;
- BatchNorm re-estimation alone on all 94 photos, no labels (``--unlabelled``, networks).
Then how far the adapted run drifted on mango-grading's held-out photos (each graded by
its own adapted fold model), and, with --time-run, ``mangograde adapt RUN aicup --labels
30-photo.csv`` timed as a whole command.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def stratified(codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` photos with the grades' shares (at least 2 of each grade)."""
    picked = []
    shares = np.bincount(codes) / len(codes)
    for grade, share in enumerate(shares):
        rows = np.flatnonzero(codes == grade)
        take = max(2, int(round(n * share)))
        picked += list(rng.choice(rows, min(take, len(rows)), replace=False))
    return np.sort(np.array(picked[:n] if len(picked) > n else picked))


def accuracy(models, images, truth, n_grades) -> float:
    from mangograde.models.blend import model_probabilities

    proba = model_probabilities(models, images, np.arange(n_grades)).mean(axis=0)
    return float(np.mean(proba.argmax(axis=1) == truth))


def measure(name: str, run_dir: Path, sizes, scratch_sizes, repeats: int) -> dict:
    import copy

    from mangograde.data import load_dataset
    from mangograde.images import ImageCache, load_images
    from mangograde.models.registry import Adaptation, FoldData, get_model
    from mangograde.runs import open_run
    from mangograde.runs.folder import geometry_from_record
    from mangograde.workflows.adapt import DEFAULTS, _parent_photos

    parent = open_run(run_dir)
    family = get_model(parent.model_kind)
    bundles = parent.bundles()
    models = [b.model for b in bundles]
    folds = [int(b.manifest.get("fold", i)) for i, b in enumerate(bundles)]
    geometry = geometry_from_record(bundles[0].manifest["preprocessing"]["geometry"])
    cache = ImageCache()
    aicup = data_dir("aicup-sample")
    sample = load_dataset(aicup / "sample_image", aicup / "Sample_Label.csv")
    images = load_images(list(sample.paths), geometry, cache).arrays
    truth = np.asarray(sample.labels)  # A, B, C: the parent's grades by rank, best first
    n_grades = len(parent.grades)
    old = _parent_photos(parent, geometry, cache, False)
    held, old_images = old
    out: dict = {"family": parent.model_kind, "run": str(run_dir), "sizes": {}}
    out["parent_on_all_94"] = accuracy(models, images, truth, n_grades)

    def task(fold: int, x: np.ndarray, y: np.ndarray | None) -> Adaptation:
        trained = held.folds != fold
        return Adaptation(x, y, DEFAULTS, old_images[trained], held.true[trained])

    last_adapted = None
    for n in sizes:
        rows = {"parent": [], "adapted": [], "scratch": [], "adapt_s": []}
        for repeat in range(repeats):
            rng = np.random.default_rng(1000 * n + repeat)
            labelled = stratified(truth, n, rng)
            rest = np.setdiff1d(np.arange(len(truth)), labelled)
            started = time.perf_counter()
            adapted = [family.adapt_fold(m, task(f, images[labelled], truth[labelled]))
                       for m, f in zip(models, folds, strict=True)]  # fmt: skip
            rows["adapt_s"].append(time.perf_counter() - started)
            rows["parent"].append(accuracy(models, images[rest], truth[rest], n_grades))
            rows["adapted"].append(accuracy(adapted, images[rest], truth[rest], n_grades))
            if n in scratch_sizes:
                scratch = family.build(copy.deepcopy(parent.settings))
                family.attach(scratch, None, False, False)
                family.fit_fold(scratch, FoldData(images, truth, None, labelled, rest))
                rows["scratch"].append(accuracy([scratch], images[rest], truth[rest], n_grades))
            last_adapted = adapted
            print(f"{name} n={n} repeat {repeat}: parent {rows['parent'][-1]:.3f} adapted "
                  f"{rows['adapted'][-1]:.3f} scratch "
                  f"{rows['scratch'][-1] if rows['scratch'] else '-'} "
                  f"({rows['adapt_s'][-1]:.0f} s)", flush=True)  # fmt: skip
        out["sizes"][n] = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "values": v}
                           for k, v in rows.items() if v}  # fmt: skip
    # -- no labels: BatchNorm statistics alone, on all 94 photos --------------------------
    try:
        bn = [family.adapt_fold(m, Adaptation(images, None, DEFAULTS)) for m in models]
        out["unlabelled_bn_on_all_94"] = accuracy(bn, images, truth, n_grades)
    except Exception as exc:  # noqa: BLE001 - a classical family refuses: say so
        out["unlabelled_bn_on_all_94"] = str(exc).split(":")[0]
    # -- how far the last adapted run drifted on mango-grading's held-out photos -----------
    if last_adapted is not None:
        right = {"parent": 0.0, "adapted": 0.0}
        for fold, m, a in zip(folds, models, last_adapted, strict=True):
            mine = held.folds == fold
            for arm, model in (("parent", m), ("adapted", a)):
                right[arm] += (
                    accuracy([model], old_images[mine], held.true[mine], n_grades) * mine.sum()
                )
        out["mango_grading_held_out"] = {k: v / len(held.folds) for k, v in right.items()}
        out["mango_grading_held_out"]["adapted_on"] = int(max(sizes))
    return out


def time_command(run: Path, n: int = 30) -> float:
    """``mangograde adapt`` on n stratified aicup photos, as a whole command (seconds)."""
    aicup = data_dir("aicup-sample")
    rows = list(csv.reader((aicup / "Sample_Label.csv").open(encoding="utf-8")))
    codes = np.array(["ABC".index(r[1][-1]) for r in rows])
    picked = stratified(codes, n, np.random.default_rng(7))
    work = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    labels = work / "few.csv"
    labels.write_text("".join(f"{rows[i][0]},{rows[i][1]}\n" for i in picked), encoding="utf-8")
    photos = work / "photos"
    photos.mkdir()
    for i in picked:
        (photos / rows[i][0]).symlink_to(aicup / "sample_image" / rows[i][0])
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mangograde", "adapt", str(run), str(photos),
                    "--labels", str(labels), "--regrade", "--out", str(work / "adapted"),
                    "--quiet"], check=True)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN")
    parser.add_argument("--sizes", default="10,30,60")
    parser.add_argument("--scratch-sizes", default="10,30,60")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-run", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("adapt-results.json"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    scratch = {int(s) for s in args.scratch_sizes.split(",") if s}
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    for run in args.time_run:
        results[f"adapt command, 30 photos: {run.name}"] = time_command(run)
        print(f"adapt {run}: {results[f'adapt command, 30 photos: {run.name}']:.0f} s", flush=True)
    for spec in args.runs:
        name, _, path = spec.partition("=")
        results[name] = measure(name, Path(path), sizes, scratch, args.repeats)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
