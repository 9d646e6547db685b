"""Classical presets against the study's plain scikit-learn recipes, in one run.

Usage:
  python benchmarks/bench_classical.py [PRESET ...]   accuracy and time, cold and warm cache
  python benchmarks/bench_classical.py --memory N     peak memory of rf-study on N synthetic photos

Accuracy and speed use ../shared/data/mango-grading and the same 5 folds by fruit as
../shared/benchmarks/baseline_classic.py (StratifiedGroupKFold, seed 0), which runs first in
the same benchmark; each preset runs as a whole `mangograde train` process, once with an
empty image cache (cold) and once more (warm). Ratios are plain time / preset time.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import data_dir, machine

BASELINE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "baseline_classic.py"
PLAIN_OF = {
    "svm-study": "pca200+svc",
    "svm-raw": "pca200+svc",
    "rf-study": "rf1000",
    "colour-texture": "rf1000",
}


def plain_recipes(data: Path) -> dict[str, dict[str, float]]:
    text = subprocess.run(
        [sys.executable, str(BASELINE), str(data)], capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"(\S+): acc ([\d.]+) .* load ([\d.]+)s\s+fit\+predict ([\d.]+)s", line)
        if m:
            name, acc, load, fit = m.groups()
            found[name] = {"accuracy": float(acc), "seconds": float(load) + float(fit)}
    return found


def train(data: Path, preset: str, cache: Path, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "MANGOGRADE_CACHE_DIR": str(cache)}
    command = ["mangograde", "train", str(data), "--groups", str(data / "fruit_groups.csv"),
               "--preset", preset, "--out", str(out), "--overwrite", "--quiet"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, json.loads((out / "metrics.json").read_text())


def speed_and_accuracy(presets: list[str]) -> None:
    data = data_dir("mango-grading")
    print(f"machine: {machine()}")
    plain = plain_recipes(data)
    for name, row in plain.items():
        print(f"plain {name}: accuracy {row['accuracy']:.4f}, {row['seconds']:.1f} s")
    print("| preset | accuracy (folds) | plain accuracy | cold s | warm s | plain s | "
          "cold x | warm x | OOB raw / honest |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            cache, out = Path(tmp) / f"cache-{preset}", Path(tmp) / f"run-{preset}"
            cold, metrics = train(data, preset, cache, out)
            warm, _ = train(data, preset, cache, out)
            base = plain[PLAIN_OF.get(preset, "pca200+svc")]
            folds = ", ".join(f"{a:.3f}" for a in metrics["accuracy_folds"])
            oob = (f"{metrics['oob_raw']:.3f} / {metrics['oob_honest']:.3f}"
                   if "oob_raw" in metrics else "")  # fmt: skip
            print(f"| {preset} | {metrics['accuracy']:.4f} ({folds}) | {base['accuracy']:.4f} | "
                  f"{cold:.1f} | {warm:.1f} | {base['seconds']:.1f} | "
                  f"{base['seconds'] / cold:.2f} | {base['seconds'] / warm:.2f} | {oob} |",
                  flush=True)  # fmt: skip


def memory(n: int) -> None:
    import numpy as np

    from mangograde.data import load_dataset
    from mangograde.data.synth import synthesize
    from mangograde.images import ImageCache, Resize, load_dataset_images
    from mangograde.models.classical import build_photo_classifier
    from mangograde.models.registry import resolve

    root = Path(tempfile.gettempdir()) / f"mangograde-synth-{n}"
    if not (root / "train.csv").is_file():
        synthesize(root, n=round(n / 0.8), size=128, seed=0)  # train/ gets n
    dataset = load_dataset(root / "train", labels=root / "train.csv", groups=root / "groups.csv")
    kept, loaded = load_dataset_images(dataset, Resize(128), ImageCache(root / "cache"))
    settings = resolve(preset_name="rf-study", assignments=["n_estimators=2"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    model = build_photo_classifier(settings).fit(loaded.arrays, kept.labels, kept.groups)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows, width = model.classifier_.oob_decision_function_.shape[0], 128 * 128 * 3
    matrix = rows * width * 4 / 2**30
    print(f"machine: {machine()}")
    print(f"rf-study (2 trees) on {len(kept)} photos: {rows} x {width} float32 = {matrix:.2f} GiB;"
          f" peak RSS {peak:.2f} GiB (before fit {before:.2f} GiB), fit {seconds:.0f} s; "
          f"a float64 copy would add {2 * matrix:.2f} GiB")  # fmt: skip
    assert np.isfinite(model.classifier_.honest_oob_score_)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory"]:
        memory(int(sys.argv[2]))
    else:
        speed_and_accuracy(sys.argv[1:] or ["svm-study", "svm-raw", "rf-study", "colour-texture"])
