"""Issue 37.1: the not-a-fruit check, measured as ``train`` makes it.

    python benchmarks/bench_not_a_fruit.py RUN [RUN...] --data DIR --foreign DIR \\
        [--other DIR]

For each RUN (trained on the photos under ``--data``; its predictions.csv says which fold
held each photo out), the check is fit as ``train`` fits it: the general features of the
photos decoded at the run's geometry, the threshold from the run's folds. Reported:
- own held-out photos flagged: for each fold, a check fit without that fold's photos (its
  threshold from the other folds) scores them; the share flagged over every photo;
- ``--foreign`` photos (lemons, an empty tray) flagged by the check fit on every photo;
- ``--other`` photos (mangoes of another orchard and camera) flagged likewise;
- the scores' ranges, and the seconds a photo the general features take.
It also compares the run's own familiarity model: its out-of-fold threshold against the
foreign photos' scores (how many it would grade)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from mangograde.evaluation.not_a_fruit import fit_by_parts, held_out_flags  # noqa: E402
from mangograde.images import load_images  # noqa: E402
from mangograde.models.general_features import general_embedder  # noqa: E402
from mangograde.runs import open_run  # noqa: E402

PHOTOS = {".jpg", ".jpeg", ".png"}


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTOS)


def measure(run_dir: Path, data: Path, foreign: Path, other: Path | None) -> dict:
    run = open_run(run_dir)
    held = run.held_out
    assert held is not None, f"{run_dir} has no predictions.csv"
    geometry = run.geometry()
    paths = [data / name for name in held.image_ids]
    embed, digest = general_embedder()  # type: ignore[misc]
    images = load_images(paths, geometry, progress=False).arrays
    started = time.perf_counter()
    features = embed(images)
    per_photo_ms = 1000 * (time.perf_counter() - started) / len(images)
    folds = np.asarray(held.folds)
    flagged = held_out_flags(features, folds, digest)
    whole = fit_by_parts(features, folds, digest)
    found = {"run": run_dir.name, "geometry": geometry.key, "ms_per_photo": per_photo_ms,
             "own_flagged": float(flagged.mean()), "own_n": int(len(flagged)),
             "threshold": whole.threshold,
             "held_out_max": float(whole.model.reference.max())}  # fmt: skip
    for name, folder in (("foreign", foreign), ("other", other)):
        if folder is None:
            continue
        found_images = load_images(_photos(folder), geometry, progress=False).arrays
        scores = whole.scores(embed(found_images))
        found[f"{name}_flagged"] = float(np.mean(scores > whole.threshold))
        found[f"{name}_n"] = int(len(scores))
        found[f"{name}_min"] = float(scores.min())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--foreign", type=Path, required=True)
    parser.add_argument("--other", type=Path)
    args = parser.parse_args()
    print(machine())
    for run in args.runs:
        f = measure(run, args.data, args.foreign, args.other)
        print(f"{f['run']} ({f['geometry']}): own held-out flagged {f['own_flagged']:.1%} of "
              f"{f['own_n']}; threshold {f['threshold']:.1f} (1.5 x the farthest held-out "
              f"photo, {f['held_out_max']:.1f}); foreign flagged {f['foreign_flagged']:.1%} "
              f"of {f['foreign_n']} (nearest {f['foreign_min']:.1f})"
              + (f"; other orchard flagged {f['other_flagged']:.1%} of {f['other_n']} "
                 f"(nearest {f['other_min']:.1f})" if "other_n" in f else "")
              + f"; general features {f['ms_per_photo']:.2f} ms a photo")  # fmt: skip


if __name__ == "__main__":
    main()
