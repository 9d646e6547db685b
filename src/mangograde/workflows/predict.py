"""``predict``'s work: grade photo files and folders with a run, and write the grades."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import DatasetError, SettingsError
from ..basics.progress import Bar
from ..data import PhotoChoice, find_photos
from ..data.fruit_ids import fruits_from_csv, fruits_from_folders
from ..evaluation.confidence import to_check
from ..evaluation.decisions import GradingRule
from ..evaluation.fruits import FruitGrades, Fruits, fruit_grades
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
    fruit_ids: list[str] | None = None  # which fruit each photo shows ("": its own)
    scores: np.ndarray | None = None  # (n_models, n) familiarity scores, with familiarity
    unfamiliar: np.ndarray | None = None  # which photos the grader finds unfamiliar
    drift_p: float | None = None  # the batch against the run's held-out photos

    @property
    def familiarity(self) -> np.ndarray | None:
        """Each photo's familiarity score (the mean over the fold models)."""
        return None if self.scores is None else self.scores.mean(axis=0)

    def reasons(self, abstain: float | None = None) -> list[str]:
        """Why each photo is to check by hand: ``unfamiliar`` (unlike the training photos),
        else ``unsure`` (its top probability below ``abstain``), else ""."""
        unsure = to_check(self.proba, abstain)
        odd = np.zeros(len(unsure), bool) if self.unfamiliar is None else self.unfamiliar
        pairs = zip(odd, unsure, strict=True)
        return ["unfamiliar" if o else "unsure" if u else "" for o, u in pairs]

    def labels(self, abstain: float | None = None) -> list[str]:
        """Each photo's grade, or ``check`` (to grade by hand) where it has a reason."""
        return [CHECK if why else self.grades[c]
                for c, why in zip(self.predicted, self.reasons(abstain), strict=True)]  # fmt: skip

    @property
    def fruits(self) -> Fruits | None:
        return None if self.fruit_ids is None else Fruits.from_ids(self.fruit_ids, self.image_ids)

    def grade_fruits(self, rule: GradingRule) -> FruitGrades:
        """The fruits these photos show, graded by ``rule`` (each photo its own fruit when
        no fruit ids were given)."""
        fruits = self.fruits or Fruits.each_photo(self.image_ids)
        return fruit_grades(rule, self.proba, fruits, self.unfamiliar)

    def fruit_labels(self, fruits: FruitGrades) -> list[str]:
        """Each photo's label taken from its fruit's grade (``check`` where the fruit is)."""
        labels = fruit_grade_labels(fruits, self.grades)
        return [labels[f] for f in fruits.fruits.of]


def fruit_grade_labels(fruits: FruitGrades, grades: Sequence[str]) -> list[str]:
    """Each fruit's grade, or ``check`` where it is left to grade by hand."""
    return [CHECK if c else grades[p] for p, c in zip(fruits.predicted, fruits.check, strict=True)]


def grade_images(
    predictor: RunPredictor, images: np.ndarray, progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Probabilities and grade codes of decoded photos, in batches behind a progress bar,
    and :class:`Graded`'s familiarity fields: the scores ``(n_models, n)``, the flags and
    the batch's drift p-value (None without familiarity)."""
    proba = np.zeros((len(images), len(predictor.grades)))
    codes = np.zeros(len(images), dtype=int)
    scores = []
    with Bar(len(images), "Grading photos", progress, every=1000) as bar:
        for start in range(0, len(images), BATCH):
            chunk = slice(start, start + BATCH)
            proba[chunk], codes[chunk], found = predictor.grade_and_score(images[chunk])
            scores.append(found)
            bar.advance(len(images[chunk]))
    known = scores and all(s is not None for s in scores)
    found = np.concatenate(scores, axis=1) if known else None
    familiar = {"scores": found, "unfamiliar": predictor.unfamiliar(found),
                "drift_p": predictor.drift(found)}  # fmt: skip
    return proba, codes, familiar


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
    groups: Path | None = None,
    fruit_folders: bool = False,
    choice: PhotoChoice | None = None,
) -> Graded:
    """Grade photo files and folders (labels, if any, are not needed and not read).

    ``groups`` (a CSV of image,group, as ``train`` reads) or ``fruit_folders``
    (``PHOTOS/FRUIT_ID/*.jpg``) say which photos show one fruit; both are read before any
    photo is decoded. ``choice``: only the photos its globs and sample keep."""
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
    return grade_found(predictor, paths, ids, notices, cache, skip_bad, progress, fruit_ids)


def grade_found(
    predictor: RunPredictor,
    paths: Sequence[Path],
    ids: Sequence[str],
    notices: list[str],
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    fruit_ids: Sequence[str] | None = None,
) -> Graded:
    """Decode and grade photos already found (:func:`find_photos`)."""
    images, kept, bad, load_notices = decode_photos(predictor, paths, cache, skip_bad, progress)
    proba, predicted, familiar = grade_images(predictor, images, progress)
    return Graded(
        [paths[i] for i in kept],
        [ids[i] for i in kept],
        proba,
        predicted,
        predictor.grades,
        bad,
        notices + load_notices + predictor.notices,
        fruit_ids=None if fruit_ids is None else [fruit_ids[i] for i in kept],
        **familiar,
    )


def familiar_record(predictor: Any, graded: Graded) -> dict[str, Any] | None:
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


def write_submission(
    path: str | Path,
    graded: Graded,
    probabilities: bool = True,
    abstain: float | None = None,
    fruits: FruitGrades | None = None,
) -> Path:
    """The competition's ``image_id,label`` columns, ``true`` when the photos were
    labelled, ``fruit`` when they were graded as fruits, then (unless ``probabilities`` is
    False) ``p_<grade>`` for each grade, ``familiarity`` (the photo's score, with a
    familiarity model) and ``reason`` (why the photo is to check by hand). A photo with a
    reason (unfamiliar; or its top probability below ``abstain``) is labelled ``check``.
    With ``fruits``, each photo is labelled with its fruit's grade (``--fruit-grade``).
    The competition's format (``probabilities`` False) holds grades only: every photo
    gets its grade there."""
    path = Path(path)
    truth = [] if graded.truth is None else ["true"]
    fruit = ["fruit"] if probabilities and graded.fruit_ids is not None else []
    columns = [f"p_{g}" for g in graded.grades] if probabilities else []
    familiarity = graded.familiarity if probabilities else None
    checks = probabilities and (abstain is not None or graded.unfamiliar is not None)
    extra = [*(["familiarity"] if familiarity is not None else []), *(["reason"] if checks else [])]
    found = graded.fruits
    names, of = (found.names, found.of) if found is not None else ((), ())
    if not probabilities:
        labels = [graded.grades[c] for c in graded.predicted] if fruits is None else [
            graded.grades[fruits.predicted[f]] for f in fruits.fruits.of]  # fmt: skip
        reasons = [""] * len(labels)
    elif fruits is None:
        labels, reasons = graded.labels(abstain), graded.reasons(abstain)
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
    """One row a fruit: its id, its photo count, its grade, one probability per grade,
    whether to check it by hand and why."""
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
            writer.writerow([name, int(counts[i]), grades[fruits.predicted[i]], *shares, check,
                             fruits.reason(i)])  # fmt: skip
    return path
