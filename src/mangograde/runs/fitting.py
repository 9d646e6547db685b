"""Fitting folds, the stages ``train``, ``search``, ``ablate`` and ``optuna_search`` share:
resolve the family once (:func:`family_of`) -> load the photos once (:func:`load_for`) ->
split (:func:`splits_for`) -> fit each fold (:func:`fit_fold`, or :func:`fit_many` for
independent fits, in this process or in parallel). Writing a run folder is
:mod:`mangograde.workflows.train`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import DatasetError, SettingsError, listing, plural
from ..data import Dataset
from ..data.splits import holdout, kfold
from ..evaluation.confidence import check_abstain
from ..evaluation.decisions import check_decision, decide
from ..evaluation.fruits import check_fruit_rule, fruit_rule
from ..images import ImageCache, load_dataset_images
from ..images.loader import LoadedImages
from ..images.similar import BURST_SECONDS, bursts, identical_photos, near_duplicates, taken_at
from ..models.registry import FoldData, ModelFamily, Settings, get_model
from ..models.validation import check_params
from .familiar import familiar_quantile, wants_not_a_fruit
from .fold_notes import fold_notes
from .parallel import engine

Split = tuple[np.ndarray, np.ndarray]


@dataclass
class Photos:
    """The run's photos, decoded once at the family's geometry; folds index these arrays."""

    dataset: Dataset  # without the photos that were skipped; copies grouped as one fruit
    loaded: LoadedImages
    notices: list[str] = field(default_factory=list)

    @property
    def images(self) -> np.ndarray:
        return self.loaded.arrays

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    @property
    def groups(self) -> np.ndarray | None:
        groups = self.dataset.groups
        return None if groups is None else np.asarray(groups)


@dataclass
class FoldResult:
    proba: np.ndarray
    predicted: np.ndarray
    fit_s: float
    predict_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the family warned about


def family_of(settings: Settings) -> tuple[ModelFamily, Any]:
    """The settings' family and an unfitted model, the settings checked before any photo
    is decoded."""
    family = get_model(settings["model"])
    check_decision(settings.get("decision", "argmax"))
    _check_calibration(settings)
    check_abstain(settings.get("abstain"))
    check_fruit_rule(fruit_rule(settings))
    familiar_quantile(settings)
    wants_not_a_fruit(settings)
    model = family.build(settings)
    check_params(model)
    family.check(settings)
    return family, model


CALIBRATIONS = ("auto", "none", "temperature")
AUTO_CALIBRATION_PHOTOS = 100  # held-out photos enough to fit a temperature without fruits


def resolve_calibration(settings: Settings, dataset: Dataset) -> str | None:
    """``calibration=auto`` (the default of new runs) made ``temperature`` where the
    held-out photos allow it (every fold of --cv K, and fruits or at least
    ``AUTO_CALIBRATION_PHOTOS`` photos), else ``none``, in ``settings``; what was chosen,
    in words (None when the setting was given)."""
    if settings.get("calibration") != "auto":
        return None
    split = settings["split"]
    every_fold = bool(split.get("cv")) and not split.get("val_fraction")
    every_fold = every_fold and split.get("only_fold") is None
    fruits = dataset.groups is not None or getattr(dataset, "auto_groups", False)
    enough = fruits or len(dataset.paths) >= AUTO_CALIBRATION_PHOTOS
    if every_fold and enough:
        settings["calibration"] = "temperature"
        return ("Calibrated by default: a temperature fit on the other folds' held-out "
                f"{'fruits' if fruits else 'photos'} (calibration=auto; --set "
                "calibration=none turns it off).")  # fmt: skip
    settings["calibration"] = "none"
    why = "one fold" if not every_fold else f"fewer than {AUTO_CALIBRATION_PHOTOS} photos"
    return (
        f"Not calibrated: {why} and no fruits to fit a temperature on (calibration=auto; "
        "train every fold of --cv K with --groups to calibrate)."
    )


def _check_calibration(settings: Settings) -> None:
    how = settings.get("calibration", "none")
    if how not in CALIBRATIONS:
        raise SettingsError(
            f"Unknown calibration {how!r}: use auto (temperature where the held-out photos "
            "allow it), none or temperature (fit on held-out fruits)."
        )
    split = settings["split"]
    if how == "temperature" and (split.get("val_fraction") or split.get("only_fold") is not None):
        raise SettingsError(
            "calibration=temperature is fit on the out-of-fold probabilities of the other "
            "folds: train all folds of --cv K (no --val-fraction, no --only-fold)."
        )


def load_for(
    settings: Settings,
    dataset: Dataset,
    cache: ImageCache | None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> Photos:
    """Decode every photo once, at the family's geometry."""
    if not dataset.labelled:
        raise DatasetError(
            f"{dataset.root} has no grades: training needs a label CSV (--labels) or class folders."
        )
    geometry = get_model(settings["model"]).geometry(settings)
    kept, loaded = load_dataset_images(dataset, geometry, cache, skip_bad, None, progress)
    copies = identical_photos(loaded.arrays)
    notices = []
    if copies:
        names = listing([" = ".join(kept.image_ids[i] for i in c) for c in copies], 5)
        notices.append(
            f"{plural(sum(len(c) for c in copies), 'photo')} are exact copies of another "
            f"({names}); each set of copies now counts as one fruit, so no copy is held out "
            "while its twin is trained on."
        )
    grouped = kept.with_copies_grouped(copies)
    if kept.groups is None:
        grouped, found = _related(grouped, loaded.arrays)
        notices += found
    return Photos(grouped, loaded, notices)


def _related(dataset: Dataset, images: np.ndarray) -> tuple[Dataset, list[str]]:
    """Near-duplicates and bursts among photos with no fruit groups: grouped with
    --groups auto, else a warning with their count."""
    near = near_duplicates(images)
    burst = bursts(taken_at(dataset.paths), dataset.labels)
    n_near, n_burst = sum(map(len, near)), sum(map(len, burst))
    kind = "grade" if dataset.ordered else "class"
    seen = (
        f"{n_near} of {len(dataset)} photos are near-duplicates of another and {n_burst} were "
        f"taken within {BURST_SECONDS:.0f} s of another photo of the same {kind} (EXIF time)"
    )
    if dataset.auto_groups:
        grouped = dataset.with_copies_grouped(near + burst)
        assert grouped.groups is not None
        return grouped, [
            f"--groups auto: {seen}; each such set is one group, so the "
            f"{len(dataset)} photos form {len(set(grouped.groups))} groups that folds keep whole."
        ]
    if not n_near and not n_burst:
        return dataset, []
    return dataset, [
        f"{seen}. Split by photo, a shot and its twin land on both sides and the score is "
        "inflated: pass --groups auto to keep each such set together (or --groups CSV)."
    ]


def splits_for(settings: Settings, dataset: Dataset) -> list[Split]:
    """--cv K folds, or one --val-fraction hold-out; groups always stay whole."""
    split, seed = settings["split"], settings["seed"]
    if split.get("val_fraction"):
        return [holdout(dataset.labels, split["val_fraction"], dataset.groups, seed)]
    if not split.get("cv"):
        raise SettingsError("Choose --cv K (K >= 2) or --val-fraction F to hold photos out.")
    return kfold(dataset.labels, int(split["cv"]), dataset.groups, seed, dataset.grades)


def fold_numbers(settings: Settings, n_splits: int) -> list[int]:
    """The fold numbers a run trains: all, or the one --only-fold names."""
    only = settings["split"].get("only_fold")
    if only is None:
        return list(range(n_splits))
    cv = settings["split"].get("cv")
    if settings["split"].get("val_fraction") or not cv:
        raise SettingsError("--only-fold I picks a fold of --cv K; give --cv with it.")
    if not (isinstance(only, int) and 0 <= only < int(cv)):
        raise SettingsError(
            f"--only-fold must be a fold of --cv {cv}: 0 to {int(cv) - 1}, not {only!r}."
        )
    return [only]


def fit_fold(
    family: ModelFamily,
    model: Any,
    photos: Photos,
    split: Split,
    shared: Any = None,
    number: int = 0,
) -> FoldResult:
    """Fit ``model`` on one fold and grade its held-out photos."""
    fold = FoldData(photos.images, photos.labels, photos.groups, *split, shared)
    return _fit_and_grade(family, model, fold, number)


def _fit_and_grade(family: ModelFamily, model: Any, fold: FoldData, number: int) -> FoldResult:
    with fold_notes() as notes:
        start = time.perf_counter()
        family.fit_fold(model, fold)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        proba, predicted = family.grade_fold(model, fold)
        predict_s = time.perf_counter() - start
    history, scores = family.history(model, number), family.fold_scores(model)
    return FoldResult(proba, predicted, fit_s, predict_s, history, scores, notes)


def _fold_task(
    settings: Settings,
    images: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    split: Split,
    shared: Any,
    number: int,
    checkpoints: Path | None,
    resume: bool,
    progress: bool | None,
) -> tuple[FoldResult, Any]:
    """Build, fit and grade one fold: a task a worker can run (everything it needs comes
    in its arguments; the family is looked up by name there)."""
    family = get_model(settings["model"])
    model = family.build(settings)
    family.attach(model, checkpoints, resume, progress)
    result = _fit_and_grade(family, model, FoldData(images, labels, groups, *split, shared), number)
    rule = settings.get("decision", "argmax")
    if rule != "argmax":  # the family's own rule otherwise (a blend's vote, an SVM's margin)
        result.predicted = decide(result.proba, rule)
    family.attach(model, None, False, False)  # not saved in the bundle
    return result, model


@dataclass
class Job:
    """One independent fit: these settings on this split (fold ``number``)."""

    settings: Settings
    split: Split
    number: int = 0
    checkpoints: Path | None = None


def fit_many(
    jobs: list[Job],
    photos: Photos,
    shared: Any = None,
    resume: bool = False,
    progress: bool | None = None,
    bar: bool = True,
    backend: str | None = None,
    scheduler: str | None = None,
    description: str = "Training folds",
) -> list[tuple[FoldResult, Any]]:
    """Fit every job (in this process, or in parallel on ``backend``), in job order: the
    fold results and fitted models. The photos and ``shared`` go to workers once."""
    inner = progress if backend is None else False  # a worker's bar would go nowhere
    labels, groups = photos.labels, photos.groups
    tasks = [
        (job.settings, photos.images, labels, groups, job.split, shared, job.number,
         job.checkpoints, resume, inner)
        for job in jobs
    ]  # fmt: skip
    with engine(backend, scheduler, shared=[photos.images, shared]) as run_all:
        return run_all(_fold_task, tasks, description, progress if bar else False)
