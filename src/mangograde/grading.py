"""Grade photos with a trained run: new photos (``predict``) or a labelled set (``evaluate``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_open
from .data import Dataset, find_photos
from .errors import DatasetError
from .evaluation import evaluate
from .images import ImageCache, load_images
from .images.decode import BadImage
from .images.loader import bad_images_message
from .progress import Bar
from .runs import RunPredictor

BATCH = 128


@dataclass
class Graded:
    """Photos graded by a run: ``proba[i]`` is the photo ``paths[i]`` (bad photos left out)."""

    paths: list[Path]
    image_ids: list[str]
    proba: np.ndarray
    predicted: np.ndarray
    grades: tuple[str, ...]
    bad: list[BadImage] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None  # grade codes, when the photos were labelled

    def labels(self) -> list[str]:
        return [self.grades[c] for c in self.predicted]


def grade_images(
    predictor: RunPredictor, images: np.ndarray, progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and grade codes of decoded photos, in batches behind a progress bar."""
    proba = np.zeros((len(images), len(predictor.grades)))
    codes = np.zeros(len(images), dtype=int)
    with Bar(len(images), "Grading photos", progress) as bar:
        for start in range(0, len(images), BATCH):
            chunk = slice(start, start + BATCH)
            proba[chunk], codes[chunk] = predictor.grade(images[chunk])
            bar.advance(len(images[chunk]))
    return proba, codes


def _decode(
    predictor: RunPredictor,
    paths: Sequence[Path],
    cache: ImageCache | None,
    skip_bad: bool,
    progress: bool | None,
) -> tuple[np.ndarray, np.ndarray, list[BadImage], list[str]]:
    loaded = load_images(list(paths), predictor.geometry, cache, skip_bad, None, progress)
    if len(loaded.kept) == 0:
        raise DatasetError(f"Nothing to grade: {bad_images_message(loaded.bad, skip_bad)}")
    return loaded.arrays, loaded.kept, loaded.bad, loaded.notices


def grade_photos(
    predictor: RunPredictor,
    inputs: Sequence[str | Path],
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> Graded:
    """Grade photo files and folders (labels, if any, are not needed and not read)."""
    paths, ids, notices = find_photos(inputs)
    images, kept, bad, load_notices = _decode(predictor, paths, cache, skip_bad, progress)
    proba, predicted = grade_images(predictor, images, progress)
    return Graded(
        [paths[i] for i in kept],
        [ids[i] for i in kept],
        proba,
        predicted,
        predictor.grades,
        bad,
        notices + load_notices + predictor.notices,
    )


def write_submission(path: str | Path, graded: Graded) -> Path:
    """The competition's ``image_id,label`` columns, ``true`` when the photos were
    labelled, then ``p_<grade>`` for each grade."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = [] if graded.truth is None else ["true"]
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "label", *truth, *(f"p_{g}" for g in graded.grades)])
        for i, (image_id, label) in enumerate(zip(graded.image_ids, graded.labels(), strict=True)):
            true = [] if graded.truth is None else [graded.grades[graded.truth[i]]]
            writer.writerow([image_id, label, *true, *(f"{p:.6f}" for p in graded.proba[i])])
    return path


def match_grades(run_grades: Sequence[str], dataset: Dataset) -> list[str]:
    """Check the dataset can be scored against the run; notices of how grades were matched.

    Grades are always best first, so two lists of the same length match by rank (a run
    trained on Extra_Class / Class_I / Class_II scores photos labelled A / B / C).
    """
    if not dataset.labelled:
        raise DatasetError(
            f"{dataset.root} has no grades to evaluate against: give a label CSV (--labels) "
            "or grade folders. To grade unlabelled photos, use `mangograde predict`."
        )
    if tuple(dataset.grades) == tuple(run_grades):
        return []
    if set(dataset.grades) == set(run_grades):
        raise DatasetError(
            f"{dataset.root} orders its grades {', '.join(dataset.grades)} but the run "
            f"{', '.join(run_grades)} (best first in both). Give the order with --grades."
        )
    if len(dataset.grades) != len(run_grades):
        raise DatasetError(
            f"The run grades {', '.join(run_grades)} but {dataset.root} is labelled "
            f"{', '.join(dataset.grades)}. Evaluate on photos labelled with as many grades "
            "as the run's, best first (for grade folders, give their order with --grades)."
        )
    pairs = ", ".join(f"{d} = {r}" for d, r in zip(dataset.grades, run_grades, strict=True))
    return [f"Grades matched by rank, best first: {pairs}."]


def seen_in_training(data_root: Path | None, dataset: Dataset) -> list[str]:
    """A notice when the photos to evaluate come from the folder the run was trained on."""
    if data_root is None or Path(data_root).resolve() != Path(dataset.root).resolve():
        return []
    return [
        f"{dataset.root} is the folder this run was trained on: its models have seen these "
        "photos (every fold model but one saw each of them), so these scores are inflated. "
        "The run's own held-out scores are in its metrics.json; `mangograde compare` shows "
        "them with intervals."
    ]


def evaluate_dataset(
    predictor: RunPredictor,
    dataset: Dataset,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    progress: bool | None = None,
    trained_on: Path | None = None,
) -> tuple[dict[str, Any], Graded]:
    """Grade a labelled dataset and measure it (bootstrap by fruit when it has groups).

    ``trained_on``: the run's data folder, to warn when these are its training photos.
    """
    matched = match_grades(predictor.grades, dataset) + seen_in_training(trained_on, dataset)
    images, kept, bad, notices = _decode(predictor, dataset.paths, cache, skip_bad, progress)
    proba, predicted = grade_images(predictor, images, progress)
    kept_set = dataset.subset(kept)
    record = evaluate(
        kept_set.labels, predicted, dataset.grades, proba, kept_set.groups, n_boot, 0.95, seed
    )
    record["n_skipped"] = len(bad)
    record["notices"] = matched
    graded = Graded(
        list(kept_set.paths),
        list(kept_set.image_ids),
        proba,
        predicted,
        predictor.grades,
        bad,
        matched + notices + predictor.notices,
        kept_set.labels,
    )
    return record, graded
