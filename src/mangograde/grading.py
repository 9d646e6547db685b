"""Grade photos with a trained run: new photos (``predict``) or a labelled set (``evaluate``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_open
from .data import Dataset, find_photos
from .errors import DatasetError
from .evaluation.confidence import to_check
from .images import ImageCache, load_images
from .images.decode import BadImage
from .images.loader import bad_images_message
from .progress import Bar

if TYPE_CHECKING:
    from .runs import RunPredictor

BATCH = 128
CHECK = "check"  # the label of a photo left to grade by hand (predict --abstain)


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

    def labels(self, abstain: float | None = None) -> list[str]:
        """Each photo's grade, or ``check`` (to grade by hand) where its top probability is
        below ``abstain``."""
        unsure = to_check(self.proba, abstain)
        return [CHECK if u else self.grades[c] for c, u in zip(self.predicted, unsure, strict=True)]


def grade_images(
    predictor: RunPredictor, images: np.ndarray, progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and grade codes of decoded photos, in batches behind a progress bar."""
    proba = np.zeros((len(images), len(predictor.grades)))
    codes = np.zeros(len(images), dtype=int)
    with Bar(len(images), "Grading photos", progress, every=1000) as bar:
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


def write_submission(
    path: str | Path, graded: Graded, probabilities: bool = True, abstain: float | None = None
) -> Path:
    """The competition's ``image_id,label`` columns, ``true`` when the photos were
    labelled, then (unless ``probabilities`` is False) ``p_<grade>`` for each grade. With
    ``abstain``, a photo whose top probability is below it is labelled ``check``."""
    path = Path(path)
    truth = [] if graded.truth is None else ["true"]
    columns = [f"p_{g}" for g in graded.grades] if probabilities else []
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "label", *truth, *columns])
        labels = graded.labels(abstain)
        for i, (image_id, label) in enumerate(zip(graded.image_ids, labels, strict=True)):
            true = [] if graded.truth is None else [graded.grades[graded.truth[i]]]
            shares = [f"{p:.6f}" for p in graded.proba[i]] if probabilities else []
            writer.writerow([image_id, label, *true, *shares])
    return path


def match_grades(
    run_grades: Sequence[str], dataset: Dataset, ordered: bool = True
) -> tuple[Dataset, list[str]]:
    """The dataset with its labels in the run's grade codes, and how they were matched.

    The same names match by name, whatever order the data lists them in. Other names match
    by rank when both are grades best-first (a run trained on Extra_Class / Class_I /
    Class_II scores photos labelled A / B / C); classes with no order only match by name.
    """
    if not dataset.labelled:
        raise DatasetError(
            f"{dataset.root} has no grades to evaluate against: give a label CSV (--labels) "
            "or grade folders. To grade unlabelled photos, use `mangograde predict`."
        )
    if set(dataset.grades) <= set(run_grades):
        return dataset.in_grade_order(tuple(run_grades)), []
    what = "grades" if ordered else "classes"
    if not ordered or len(dataset.grades) != len(run_grades):
        raise DatasetError(
            f"The run's {what} are {', '.join(run_grades)} but {dataset.root} is labelled "
            f"{', '.join(dataset.grades)}. Evaluate on photos labelled with the run's "
            f"{what}" + (", or as many grades best-first (--grades)." if ordered else ".")
        )
    pairs = ", ".join(f"{d} = {r}" for d, r in zip(dataset.grades, run_grades, strict=True))
    return replace(dataset, grades=tuple(run_grades)), [
        f"Grades matched by rank, best first: {pairs}."
    ]


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
    ordered: bool = True,
) -> tuple[dict[str, Any], Graded]:
    """Grade a labelled dataset and measure it (bootstrap by fruit when it has groups).

    ``trained_on``: the run's data folder, to warn when these are its training photos;
    ``ordered``: False for a run of classes with no order.
    """
    dataset, matched = match_grades(predictor.grades, dataset, ordered)
    matched += seen_in_training(trained_on, dataset)
    images, kept, bad, notices = _decode(predictor, dataset.paths, cache, skip_bad, progress)
    proba, predicted = grade_images(predictor, images, progress)
    kept_set = dataset.subset(kept)
    from .evaluation import evaluate

    record = evaluate(
        kept_set.labels,
        predicted,
        dataset.grades,
        proba,
        kept_set.groups,
        n_boot,
        0.95,
        seed,
        ordered,
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
