"""``predict``'s work: grade photo files and folders with a grader, and write the grades."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import DatasetError, SettingsError
from ..data import PhotoChoice, find_photos
from ..data.fruit_ids import fruits_from_csv, fruits_from_folders
from ..evaluation.fruits import FruitGrades
from ..evaluation.not_a_fruit import REASON as NOT_A_FRUIT
from ..graders import CHECK, Graded, Grader, fruit_grade_labels, grade_batch
from ..images import ImageCache, load_images
from ..images.decode import BadImage
from ..images.loader import bad_images_message

__all__ = [
    "CHECK",
    "Graded",
    "decode_photos",
    "familiar_record",
    "fruit_grade_labels",
    "grade_found",
    "grade_photos",
    "predict",
    "write_fruits",
    "write_submission",
]


def decode_photos(
    predictor: Grader,
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
    predictor: Grader,
    inputs: Sequence[str | Path],
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    groups: Path | None = None,
    fruit_folders: bool = False,
    choice: PhotoChoice | None = None,
    abstain: float | None = None,
) -> Graded:
    """Grade photo files and folders (labels, if any, are not needed and not read).

    ``groups`` (a CSV of image,group, as ``train`` reads) or ``fruit_folders``
    (``PHOTOS/FRUIT_ID/*.jpg``) say which photos show one fruit; both are read before any
    photo is decoded. ``choice``: only the photos its globs and sample keep; ``abstain``:
    the threshold under which a photo is left to check (default: the grader's)."""
    paths, ids, notices = find_photos(inputs)
    fruit_ids = None
    if groups is not None and fruit_folders:
        raise SettingsError("Give --groups or --fruit-folders, not both.")
    if groups is not None:
        fruit_ids, found = fruits_from_csv(paths, ids, groups)
        notices += found
    elif fruit_folders:
        fruit_ids, found = fruits_from_folders([Path(i) for i in inputs], paths)
        notices += found
    if choice is not None:
        kept, chosen = choice.apply(inputs, paths, fruit_ids)
        paths, ids = [paths[i] for i in kept], [ids[i] for i in kept]
        fruit_ids = None if fruit_ids is None else [fruit_ids[i] for i in kept]
        notices += chosen
    return grade_found(
        predictor, paths, ids, notices, cache, skip_bad, progress, fruit_ids, abstain
    )


def grade_found(
    predictor: Grader,
    paths: Sequence[Path],
    ids: Sequence[str],
    notices: list[str],
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    fruit_ids: Sequence[str] | None = None,
    abstain: float | None = None,
) -> Graded:
    """Decode and grade photos already found (:func:`find_photos`) by :func:`grade_batch`."""
    images, kept, bad, load_notices = decode_photos(predictor, paths, cache, skip_bad, progress)
    fruits = None if fruit_ids is None else [fruit_ids[i] for i in kept]
    graded = grade_batch(predictor, images, [ids[i] for i in kept], fruits, abstain, progress)
    graded.paths = [paths[i] for i in kept]
    graded.bad = bad
    graded.notices = notices + load_notices + graded.notices
    return graded


def familiar_record(predictor: Grader, graded: Graded) -> dict[str, Any] | None:
    """How many of the graded photos the run finds unfamiliar, whether the batch drifted,
    and the accuracy on either side; None for a grader without familiarity."""
    if graded.unfamiliar is None or predictor.familiarity is None:
        return None
    flagged, truth, predicted = graded.unfamiliar, graded.truth, graded.predicted

    def accuracy(which: np.ndarray) -> float | None:
        if truth is None or not which.any():
            return None
        return float(np.mean(predicted[which] == truth[which]))

    return {
        "threshold": predictor.familiarity.threshold,
        "n_unfamiliar": int(flagged.sum()),
        "share_unfamiliar": float(flagged.mean()) if len(flagged) else 0.0,
        "drift_p": graded.drift_p,
        "accuracy_familiar": accuracy(~flagged),
        "accuracy_unfamiliar": accuracy(flagged),
    }


def not_a_fruit_record(predictor: Grader, graded: Graded) -> dict[str, Any] | None:
    """How many of the graded photos are nothing like a mango of the run's training photos
    (never graded), and the accuracy on the others; None for a grader without the check."""
    flagged = graded.not_a_fruit
    if flagged is None or predictor.not_a_fruit is None:
        return None
    rest = ~flagged
    truth = graded.truth
    accuracy = None
    if truth is not None and rest.any():
        accuracy = float(np.mean(graded.predicted[rest] == truth[rest]))
    return {
        "threshold": predictor.not_a_fruit.model.threshold,
        "n_not_a_fruit": int(flagged.sum()),
        "share_not_a_fruit": float(flagged.mean()) if len(flagged) else 0.0,
        "accuracy_others": accuracy,
    }


def write_submission(
    path: str | Path, graded: Graded, probabilities: bool = True, fruit_grade: bool = False
) -> Path:
    """The competition's ``image_id,label`` columns, ``true`` when the photos were
    labelled, ``fruit`` when they were graded as fruits, then (unless ``probabilities`` is
    False) ``p_<grade>`` for each grade, ``familiarity`` (the photo's score, with a
    familiarity model) and ``reason`` (why the photo is to check by hand). A photo with a
    reason (unfamiliar; or its top probability below the batch's abstain) is labelled
    ``check``. With ``fruit_grade``, each photo is labelled with its fruit's grade
    (``--fruit-grade``). The competition's format (``probabilities`` False) holds grades
    only: every photo gets its grade there."""
    path = Path(path)
    fruits = graded.as_fruits() if fruit_grade else None
    truth = [] if graded.truth is None else ["true"]
    fruit = ["fruit"] if probabilities and graded.fruit_ids is not None else []
    columns = [f"p_{g}" for g in graded.grades] if probabilities else []
    familiarity = graded.familiarity if probabilities else None
    checks = probabilities and graded.has_checks
    extra = [*(["familiarity"] if familiarity is not None else []), *(["reason"] if checks else [])]
    found = graded.fruits
    names, of = (found.names, found.of) if found is not None else ((), ())
    if not probabilities:
        labels = [graded.grades[c] for c in graded.predicted] if fruits is None else [
            graded.grades[fruits.predicted[f]] for f in fruits.fruits.of]  # fmt: skip
        reasons = [""] * len(labels)
    elif fruits is None:
        labels, reasons = graded.labels, graded.reasons
    else:
        labels = graded.fruit_labels(fruits)
        reasons = [fruits.reason(f) for f in fruits.fruits.of]
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "label", *truth, *fruit, *columns, *extra])
        for i, (image_id, label) in enumerate(zip(graded.image_ids, labels, strict=True)):
            true = [] if graded.truth is None else [graded.grades[graded.truth[i]]]
            its_fruit = [names[of[i]]] if fruit else []
            shares = [f"{p:.6f}" for p in graded.proba[i]] if probabilities else []
            score = [] if familiarity is None else [_score(familiarity[i])]
            why = [reasons[i]] if checks else []
            writer.writerow([image_id, label, *true, *its_fruit, *shares, *score, *why])
    return path


def _score(value: float) -> str:
    """A familiarity score for a CSV (``inf``: features that could not be computed)."""
    return f"{value:.4f}" if np.isfinite(value) else "inf"


def write_fruits(path: str | Path, fruits: FruitGrades, grades: Sequence[str]) -> Path:
    """One row a fruit: its id, its photo count, its grade (none for a fruit with a photo
    that is not a mango), one probability per grade, whether to check it by hand and why."""
    path = Path(path)
    counts = fruits.fruits.counts
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["fruit", "photos", "grade", *(f"p_{g}" for g in grades), "check", "reason"]
        )
        for i, name in enumerate(fruits.fruits.names):
            shares = [f"{p:.6f}" for p in fruits.proba[i]]
            check = "yes" if fruits.check[i] else "no"
            why = fruits.reason(i)
            grade = "" if why == NOT_A_FRUIT else grades[fruits.predicted[i]]
            writer.writerow([name, int(counts[i]), grade, *shares, check, why])
    return path


def predict(
    grader: Grader,
    photos: Sequence[str | Path],
    out_file: Path,
    probabilities: bool = True,
    fruit_grade: bool = False,
    fruits_file: Path | None = None,
    record: tuple[Any, str] | None = None,
    abstain: float | None = None,
    **finding: Any,
) -> tuple[Graded, list[int]]:
    """``predict``'s work: grade ``photos`` (:func:`grade_photos`; ``finding``: its cache,
    skip_bad, progress, groups, fruit_folders and choice), keep them in a lot of the
    records (``record``: the store and the lot; :func:`mangograde.records.record_graded`),
    then write the grades (``out_file``) and, with fruits, ``fruits_file``. The graded
    batch and the grading ids it was kept under."""
    graded = grade_photos(grader, photos, abstain=abstain, **finding)
    ids: list[int] = []
    if record is not None:
        from ..records import record_graded

        store, lot = record
        ids = record_graded(store, lot, grader, graded)
    write_submission(out_file, graded, probabilities, fruit_grade)
    if fruits_file is not None and graded.fruit_grades is not None:
        write_fruits(fruits_file, graded.fruit_grades, graded.grades)
    return graded, ids
