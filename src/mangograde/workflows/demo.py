"""``mangograde demo``: the whole job on synthetic photos, from drawing them to the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..basics.errors import OutputError
from ..data import load_dataset
from ..data.synth import SYNTHETIC_MARKER, synthesize
from ..images import ImageCache
from ..models.registry import resolve

DEMO_PRESETS = ("cnn-fast", "svm-study", "rf-study")


@dataclass(frozen=True)
class DemoScale:
    """How big the demo is: photos drawn, their size, and the settings cut for time."""

    photos: int
    photo_size: int
    overrides: dict[str, tuple[str, ...]]
    mistakes: int
    samples: int


# The full demo fits in a few minutes on 2 CPU cores; the tiny one is for CI.
SCALES = {
    "full": DemoScale(360, 256, {"cnn-fast": ("epochs=25",)}, 2, 150),
    "tiny": DemoScale(
        48,
        64,
        {
            "cnn-fast": ("epochs=1", "batch_size=8"),
            "svm-study": ("features.size=64", "n_components=20"),
            "rf-study": ("n_estimators=10", "features.size=32"),
        },
        1,
        20,
    ),
}


@dataclass
class DemoResult:
    report: Path
    runs: list[Path]
    predictions: Path
    seconds: float


def run_demo(
    out: str | Path,
    scale: str = "full",
    seed: int = 0,
    cache: ImageCache | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Draw photos, train the study's three recipes, grade the dev photos and compare."""
    from ..report.html import render_report
    from ..runs import open_predictor
    from .compare import compare_runs
    from .predict import grade_photos, write_submission
    from .train import train_run

    start = time.perf_counter()
    size = SCALES[scale]
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "data" / SYNTHETIC_MARKER).is_file():
        raise OutputError(
            f"{out} is not empty and holds no earlier demo: choose another --out (the demo "
            "replaces only what an earlier demo wrote)."
        )
    data = synthesize(out / "data", n=size.photos, size=size.photo_size, seed=seed, overwrite=True)
    say(f"Drew {size.photos} synthetic mango photos in {data} (train/, dev/, CSVs)")
    dataset = load_dataset(data / "train", labels=data / "train.csv", groups=data / "groups.csv")
    record = {
        "root": str((data / "train").resolve()),
        "labels": str(data / "train.csv"),
        "groups": str(data / "groups.csv"),
        "layout": dataset.layout,
        "synthetic": True,
    }
    runs, accuracy = [], {}
    for name in DEMO_PRESETS:
        settings = resolve(
            None,
            name,
            None,
            size.overrides.get(name, ()),
            {"split": {"cv": None, "val_fraction": 0.25}, "seed": seed},
        )
        folder = out / "runs" / name
        tick = time.perf_counter()
        result = train_run(settings, dataset, folder, cache, False, True, progress, record)
        runs.append(folder)
        accuracy[folder] = result.metrics["accuracy"]
        say(
            f"Trained {name}: held-out accuracy {result.metrics['accuracy']:.3f} "
            f"in {time.perf_counter() - tick:.0f} s -> {folder}"
        )
    best = max(runs, key=accuracy.__getitem__)
    graded = grade_photos(open_predictor(best), [data / "dev"], cache, progress=progress)
    predictions = write_submission(out / "dev-predictions.csv", graded)
    say(f"Graded {len(graded.image_ids)} new photos (dev/) with {best.name} -> {predictions}")
    comparison = compare_runs(runs, size.mistakes, size.samples, seed=seed, progress=progress)
    report = render_report(comparison, out / "report.html")
    return DemoResult(report, runs, predictions, time.perf_counter() - start)
