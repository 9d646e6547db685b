"""CNN recipes against the study's plain PyTorch script, in one run.

Usage:
  python benchmarks/bench_cnn.py fold0 [PRESET ...]   plain script, then each preset, on fold 0
  python benchmarks/bench_cnn.py cv PRESET            all 5 folds of `mangograde train`
  python benchmarks/bench_cnn.py grade NAME [SET...]  grading speed on the aicup-sample photos
                                                      (a preset or a family, e.g. transfer,
                                                      then key=value settings)

fold0: ../shared/benchmarks/baseline_cnn.py (128 px, 30 epochs) trains on fold 0 of a 5-fold
StratifiedGroupKFold by fruit (seed 0) of ../shared/data/mango-grading; each preset then
trains on the same fold in this process. Times are training only (both exclude decoding).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import data_dir, machine
from mangograde.data import load_dataset
from mangograde.data.splits import kfold
from mangograde.images import ImageCache, load_dataset_images, load_images
from mangograde.models.registry import build_model, get_model, model_names, resolve

MANGOGRADE = str(Path(sys.executable).parent / "mangograde")  # this environment's command
BASELINE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "baseline_cnn.py"


def mango_grading():
    root = data_dir("mango-grading")
    return root, load_dataset(root, groups=root / "fruit_groups.csv")


def plain_fold0(root: Path) -> dict[str, float]:
    """Run the plain script; its last line is 'final ACC best ACC train_time Ns'."""
    text = subprocess.run(
        [sys.executable, str(BASELINE), str(root), "128", "30"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"final ([\d.]+) best ([\d.]+) train_time (\d+)s", text)
    if not m:
        sys.exit(f"Unexpected output from {BASELINE}:\n{text[-500:]}")
    return {"accuracy": float(m[1]), "best": float(m[2]), "seconds": float(m[3])}


def preset_fold0(preset: str, dataset, fold: int = 0) -> dict[str, float]:
    settings = resolve(preset_name=preset)
    kept, loaded = load_dataset_images(
        dataset, get_model("cnn").geometry(settings), ImageCache(None)
    )
    groups = np.asarray(kept.groups)
    train, test = kfold(kept.labels, 5, groups, 0)[fold]
    model = build_model(settings)
    images, labels = loaded.arrays, kept.labels
    start = time.perf_counter()
    model.fit(images[train], labels[train], groups[train], (images[test], labels[test]))
    seconds = time.perf_counter() - start
    history = model.history_
    data = sum(r["data_s"] for r in history)
    return {
        "accuracy": float(np.mean(model.predict(images[test]) == labels[test])),
        "seconds": seconds,
        "data_share": data / (data + sum(r["step_s"] for r in history)),
        "n_test": len(test),
    }


def fold0(presets: list[str]) -> None:
    root, dataset = mango_grading()
    print(f"machine: {machine()}")
    plain = plain_fold0(root)
    print(f"plain baseline_cnn.py: acc {plain['accuracy']:.4f} (best epoch {plain['best']:.4f}), "
          f"training {plain['seconds']:.0f} s")  # fmt: skip
    for preset in presets:
        mine = preset_fold0(preset, dataset)
        share = mine["seconds"] / plain["seconds"]
        print(f"{preset}: acc {mine['accuracy']:.4f} of {mine['n_test']}, training "
              f"{mine['seconds']:.0f} s = {share:.3f} of the plain time ({1 / share:.2f}x "
              f"faster); data {mine['data_share']:.1%} of a step")  # fmt: skip


def cross_validation(preset: str) -> None:
    root, _ = mango_grading()
    with tempfile.TemporaryDirectory() as tmp:
        command = [MANGOGRADE, "train", str(root), "--groups", str(root / "fruit_groups.csv"),
                   "--preset", preset, "--cv", "5", "--out", f"{tmp}/run", "--quiet"]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        metrics = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
        timing = json.loads(Path(f"{tmp}/run/timing.json").read_text())
    folds = ", ".join(f"{a:.3f}" for a in metrics["accuracy_folds"])
    print(f"{preset} 5-fold by fruit: mean {metrics['accuracy']:.4f} "
          f"(+- {metrics['accuracy_std']:.3f}; folds {folds}); whole command {seconds:.0f} s; "
          f"data {timing['data_share']:.1%} of training")  # fmt: skip


def grading_speed(name: str, assignments: list[str]) -> None:
    """Decode (no cache), preprocess and grade every aicup-sample photo with one trained
    model of a preset or family."""
    root, dataset = mango_grading()
    family = name if name in model_names() else None
    settings = resolve(family, None if family else name, assignments=["epochs=1", *assignments])
    geometry = get_model(settings["model"]).geometry(settings)
    kept, loaded = load_dataset_images(dataset, geometry, ImageCache(None))
    model = build_model(settings).fit(loaded.arrays[::9], kept.labels[::9])  # all grades
    paths = sorted((data_dir("aicup-sample") / "sample_image").glob("*.jpg"))
    model.predict_proba(loaded.arrays[:8])  # warm-up: the first call pays for torch's setup
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        photos = load_images(paths, geometry, cache=None, progress=False).arrays
        model.predict_proba(photos)
        runs.append(time.perf_counter() - start)
    best = min(runs)
    label = " ".join([name, *assignments])
    print(f"{label}: graded {len(paths)} aicup-sample photos in {best:.2f} s = "
          f"{len(paths) / best:.1f} photos/s (best of 3; decode, preprocess, predict)")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("fold0", "cv", "grade"):
        sys.exit(__doc__)
    mode, names = sys.argv[1], sys.argv[2:] or ["cnn-fast"]
    if mode == "fold0":
        fold0(names)
    elif mode == "cv":
        cross_validation(names[0])
    else:
        grading_speed(names[0], names[1:])
