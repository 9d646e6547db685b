"""``predict``'s work: grade photo files and folders with a run, and write the grades."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import DatasetError
from ..basics.progress import Bar
from ..data import find_photos
from ..evaluation.confidence import to_check
from ..images import ImageCache, load_images
from ..images.decode import BadImage
from ..images.loader import bad_images_message

if TYPE_CHECKING:
    from ..runs import RunPredictor

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


def decode_photos(
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
    images, kept, bad, load_notices = decode_photos(predictor, paths, cache, skip_bad, progress)
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
