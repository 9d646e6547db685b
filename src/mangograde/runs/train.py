"""``mangograde train`` as flat stages: resolve the family once -> load the photos once ->
split -> fit each fold -> write the run folder (see :mod:`.folder`).

``tune``, ``ablate`` and ``demo`` call the same stages (:func:`load_for`,
:func:`splits_for`, :func:`fit_fold`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import DatasetError, SettingsError, listing, plural
from ..basics.outputs import claim_folder
from ..basics.progress import progress_mode
from ..data import Dataset
from ..data.splits import holdout, kfold
from ..evaluation import FruitLevel, evaluate, fruit_level, headline, one_grade_warnings
from ..evaluation.confidence import abstained, calibration, check_abstain
from ..evaluation.decisions import check_decision, decide
from ..evaluation.fruits import Fruits, check_fruit_rule, fruit_rule
from ..evaluation.temperature import cross_fit
from ..images import ImageCache, load_dataset_images
from ..images.loader import LoadedImages
from ..images.similar import BURST_SECONDS, bursts, identical_photos, near_duplicates, taken_at
from ..models import ddp
from ..models.bundle import library_versions
from ..models.registry import FoldData, ModelFamily, Settings, get_model, model_names
from ..models.validation import check_params
from . import folder, staging
from .familiar import familiar_quantile, fit_familiarity
from .fold_notes import few_photos_note, fold_notes, run_notes
from .lock import RunLock
from .parallel import check_backend, engine

Split = tuple[np.ndarray, np.ndarray]


@dataclass
class RunResult:
    out: Path
    metrics: dict[str, Any]
    timing: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    rank: int = 0  # under torchrun: only process 0 writes the run and has its results
    calibration: dict[str, Any] | None = None  # calibration=temperature: calibration.json

    @property
    def warnings(self) -> list[str]:
        """What makes the run unfit to use (e.g. a model that grades everything the same)."""
        return self.metrics.get("warnings", [])


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
    model = family.build(settings)
    check_params(model)
    family.check(settings)
    return family, model


CALIBRATIONS = ("none", "temperature")
FRUIT_BOOTSTRAP = 1000  # replicates for the fruit-level accuracy's interval


def _check_calibration(settings: Settings) -> None:
    how = settings.get("calibration", "none")
    if how not in CALIBRATIONS:
        raise SettingsError(
            f"Unknown calibration {how!r}: use none or temperature (fit on held-out fruits)."
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


def _start(
    settings: Settings,
    dataset: Dataset,
    out: Path,
    overwrite: bool,
    resume: bool,
    data_record: dict[str, Any] | None,
) -> tuple[ModelFamily, Any, Path]:
    """Check everything, then open the staging folder the run is written into."""
    family, model = family_of(settings)
    fold_numbers(settings, int(settings["split"].get("cv") or 1))  # --only-fold, checked now
    record = data_record or {"root": str(dataset.root)}
    resolved = folder.run_config(settings, record, dataset.ordered)
    stage = staging.prepare_stage(out, overwrite, resume)
    if resume:
        folder.check_resume(stage, resolved, family.runtime, family.defaults())
    folder.write_config(stage, resolved)
    return family, model, stage


def _metrics(photos: Photos, splits: list[Split], folds: list[FoldResult]) -> dict[str, Any]:
    right = [
        int(np.sum(f.predicted == photos.labels[test]))
        for f, (_, test) in zip(folds, splits, strict=True)
    ]
    accuracies = [r / len(test) for r, (_, test) in zip(right, splits, strict=True)]
    metrics: dict[str, Any] = {
        # the share of all held-out photos graded right, as evaluate and compare count it
        "accuracy": sum(right) / sum(len(test) for _, test in splits),
        "accuracy_std": float(np.std(accuracies)),
        "accuracy_folds": accuracies,
        "n_images": len(photos.dataset),
        "n_held_out": int(sum(len(test) for _, test in splits)),
        "n_folds": len(splits),
        "grades": list(photos.dataset.grades),
        "n_skipped": len(photos.loaded.bad),
    }
    for key in sorted({k for f in folds for k in f.scores}):
        values = [f.scores[key] for f in folds if key in f.scores]
        metrics[key] = float(np.mean(values))
        metrics[f"{key}_folds"] = values
    return metrics


def _calibrate(
    photos: Photos,
    results: list[FoldResult],
    splits: list[Split],
    settings: Settings,
    proba: np.ndarray,
    predicted: np.ndarray,
    held_fold: np.ndarray,
) -> dict[str, Any]:
    """Temperature-scale every fold's held-out probabilities (in place, results too) with a
    temperature fit on the other folds' photos; the record for calibration.json."""
    before = calibration(photos.labels, proba)["ece"]
    scaled, per_fold, overall = cross_fit(proba, photos.labels, held_fold)
    rule = settings.get("decision", "argmax")
    for result, (_, test) in zip(results, splits, strict=True):
        result.proba = scaled[test]
        if rule != "argmax":  # the most likely grade does not change with a temperature
            result.predicted = decide(result.proba, rule)
        proba[test], predicted[test] = result.proba, result.predicted
    return {
        "method": "temperature",
        "temperature": overall,
        "per_fold": {str(k): v for k, v in per_fold.items()},
        "ece_before": before,
        "ece_after": calibration(photos.labels, proba)["ece"],
    }


def _familiarity(
    family: ModelFamily, fitted: _Fitted, settings: Settings
) -> tuple[list[Any], dict[str, Any]]:
    """Each fold's familiarity model (none when the family gives no features, or a fold
    was trained on every photo), and metrics.json's record of it."""
    photos = fitted.photos
    if not all(len(test) for _, test in fitted.splits):
        return [], {"method": None, "note": "no familiarity model: no photo was held out"}
    features = []
    for (_, model), split in zip(fitted.done, fitted.splits, strict=True):
        fold = FoldData(photos.images, photos.labels, photos.groups, *split, fitted.shared)
        pair = family.embed_fold(model, fold)
        if pair is None:
            note = f"no familiarity model: --model {settings['model']} gives no features"
            return [], {"method": None, "note": note}
        features.append(pair)
    return fit_familiarity(features, familiar_quantile(settings))


def _fruit_level(
    photos: Photos, held_fold: np.ndarray, proba: np.ndarray, settings: Settings
) -> FruitLevel:
    """The held-out photos graded as whole fruits by the run's fruit rule."""
    held = np.flatnonzero(held_fold >= 0)
    dataset = photos.dataset
    groups = dataset.groups
    assert groups is not None
    fruits = Fruits.from_ids([groups[i] for i in held], [dataset.image_ids[i] for i in held])
    return fruit_level(
        photos.labels[held],
        proba[held],
        held_fold[held],
        fruits,
        fruit_rule(settings),
        settings.get("decision", "argmax"),
        settings.get("calibration", "none") == "temperature",
    )


def _fruit_metrics(level: FruitLevel, dataset: Dataset, settings: Settings) -> dict[str, Any]:
    """metrics.json's ``fruit`` section: the fruit level beside the photo level."""
    record = evaluate(
        level.true,
        level.predicted,
        dataset.grades,
        level.proba,
        n_boot=FRUIT_BOOTSTRAP,
        seed=int(settings["seed"]),
        ordered=dataset.ordered,
    )
    return headline(record, settings.get("abstain"), level)


def _data_share(rows: list[dict[str, Any]]) -> float:
    """Share of training time spent augmenting and assembling batches."""
    data = sum(r["data_s"] for r in rows)
    total = data + sum(r["step_s"] for r in rows)
    return data / total if total else 0.0


def _timing(
    photos: Photos,
    folds: list[FoldResult],
    features_s: float,
    per_photo_ms: float,
    resumed: bool,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    fit_seconds = [f.fit_s for f in folds]
    timing: dict[str, Any] = {
        "decode_s": photos.loaded.seconds,
        "features_s": features_s,
        "decode_cache_hits": photos.loaded.cache_hits,
        "fit_s": float(np.sum(fit_seconds)),
        "fit_folds_s": fit_seconds,
        "predict_s": float(np.sum([f.predict_s for f in folds])),
        "predict_per_photo_ms": per_photo_ms,
        "resumed": resumed,  # then fit_s counts only the epochs trained after resuming
        "processes": ddp.world()[1],  # torchrun's processes that trained together
    }
    if history:
        timing["data_share"] = _data_share(history)
    timing["versions"] = library_versions()
    return timing


def train_run(
    settings: Settings,
    dataset: Dataset,
    out: str | Path,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    data_record: dict[str, Any] | None = None,
    resume: bool = False,
    backend: str | None = None,
    scheduler: str | None = None,
) -> RunResult:
    """Train ``settings`` on ``dataset`` and write the run folder ``out``.

    The run is written into a staging folder beside ``out`` under an exclusive lock, and
    moved into ``out`` only when complete: a reader never sees half a run, and two
    trainings never mix. ``overwrite`` replaces a run already in ``out`` (only what that
    run wrote); ``resume`` continues a killed CNN run from its last checkpoints.
    ``backend`` (loky, threading, dask or ray; default: in this process, one fold after
    another) fits the folds in parallel, on the cluster at ``scheduler`` when given.
    Under ``torchrun`` (2+ processes) a CNN trains with DistributedDataParallel: every
    process fits every fold, process 0 alone writes the run and its checkpoints.
    """
    out = claim_folder(Path(out), inputs=[dataset.root])
    check_backend(backend, scheduler)
    if ddp.launched():
        _check_distributed(settings, backend)
    with ddp.process_group() as (rank, _):
        if rank > 0:
            return _follow(settings, dataset, out, cache, skip_bad, resume, rank)
        with RunLock(out):
            stage = None
            try:
                family, unfitted, stage = _start(
                    settings, dataset, out, overwrite, resume, data_record
                )
            finally:  # the other processes wait for the stage, or for word of a failure
                ddp.share_object(None if stage is None else str(stage))
            try:
                fitted = _fit_all(family, unfitted, settings, dataset, stage, cache, skip_bad,
                                  progress, resume, backend, scheduler)  # fmt: skip
                result = _write(family, settings, stage, fitted, resume)
                staging.publish(stage, out, uuid.uuid4().hex)
            except KeyboardInterrupt:
                staging.discard_stage(stage, keep_checkpoints=True)  # --resume continues it
                raise
            except BaseException:
                staging.discard_stage(stage, keep_checkpoints=False)
                raise
    result.out = out
    return result


def _check_distributed(settings: Settings, backend: str | None) -> None:
    if not get_model(settings["model"]).distributed:
        able = [name for name in model_names() if get_model(name).distributed]
        raise SettingsError(
            f"torchrun trains these families on several processes: {', '.join(able)}; "
            f"--model {settings['model']} does not train that way. Run it as one process, "
            "with --backend dask (or loky) to fit its folds in parallel."
        )
    if backend is not None:
        raise SettingsError(
            "Under torchrun every process already trains every fold together: drop --backend."
        )


def _follow(
    settings: Settings,
    dataset: Dataset,
    out: Path,
    cache: ImageCache | None,
    skip_bad: bool,
    resume: bool,
    rank: int,
) -> RunResult:
    """A process other than 0 under torchrun: train alongside, write nothing."""
    stage = ddp.share_object(None)
    if stage is None:
        raise SettingsError(
            f"Process {rank}: process 0 could not start the run in {out} (its message says why)."
        )
    family, unfitted = family_of(settings)
    _fit_all(family, unfitted, settings, dataset, Path(stage), cache, skip_bad, False, resume)
    return RunResult(out, {}, {}, [], rank)


@dataclass
class _Fitted:
    photos: Photos
    numbers: list[int]
    splits: list[Split]
    done: list[tuple[FoldResult, Any]]
    features_s: float
    shared: Any = None


def _fit_all(
    family: ModelFamily,
    unfitted: Any,
    settings: Settings,
    dataset: Dataset,
    out: Path,
    cache: ImageCache | None,
    skip_bad: bool,
    progress: bool | None,
    resume: bool,
    backend: str | None = None,
    scheduler: str | None = None,
) -> _Fitted:
    """Load, split and fit every fold (checkpoints in ``out``, the staging folder)."""
    photos = load_for(settings, dataset, cache, skip_bad, progress)
    splits = splits_for(settings, photos.dataset)
    numbers = fold_numbers(settings, len(splits))
    splits = [splits[i] for i in numbers]
    start = time.perf_counter()
    shared = family.prepare(unfitted, photos.images)  # once, not per fold
    features_s = time.perf_counter() - start
    # A live bar per fold would hide a CNN's own; plain log lines can show both.
    own_bar = family.draws_progress and progress_mode(progress) == "bar"
    fold_bar = progress is not False and len(splits) > 1 and not own_bar
    jobs = [
        Job(
            settings,
            split,
            number,
            folder.checkpoint_folder(out, folder.fold_name(number, settings)),
        )
        for number, split in zip(numbers, splits, strict=True)
    ]
    done = fit_many(jobs, photos, shared, resume, progress, fold_bar, backend, scheduler)
    return _Fitted(photos, numbers, splits, done, features_s, shared)


def _write(
    family: ModelFamily, settings: Settings, out: Path, fitted: _Fitted, resume: bool
) -> RunResult:
    """Write the fitted folds' models, predictions, metrics and timing into ``out``."""
    photos, numbers, splits = fitted.photos, fitted.numbers, fitted.splits
    geometry = family.geometry(settings)
    n = len(photos.dataset)
    held_fold = np.full(n, -1, dtype=np.int64)
    proba = np.zeros((n, len(photos.dataset.grades)))
    predicted = np.zeros(n, dtype=np.int64)
    results: list[FoldResult] = []
    familiar, familiar_record = _familiarity(family, fitted, settings)
    for i, (number, split, (result, model)) in enumerate(
        zip(numbers, splits, fitted.done, strict=True)
    ):
        name = folder.fold_name(number, settings)
        test = split[1]
        held_fold[test], proba[test], predicted[test] = number, result.proba, result.predicted
        results.append(result)
        record = {"fold": number, "n_train": int(len(split[0])), "n_held_out": int(len(test))}
        grades = photos.dataset.grades
        arrays = familiar[i].arrays() if familiar else None
        folder.save_fold_model(out, name, model, settings, grades, geometry, record, arrays)

    calibrate = settings.get("calibration", "none") == "temperature"
    if calibrate:
        temperature = _calibrate(photos, results, splits, settings, proba, predicted, held_fold)
    metrics = _metrics(photos, splits, results)
    metrics["familiar"] = familiar_record
    if photos.dataset.groups is not None:
        level = _fruit_level(photos, held_fold, proba, settings)
        metrics["fruit"] = _fruit_metrics(level, photos.dataset, settings)
        folder.write_fruit_predictions(out, level, photos.dataset.grades)
        if level.temperature is not None:
            temperature["fruit"] = level.temperature
    if calibrate:
        folder.write_json(out, folder.CALIBRATION, temperature)
    if settings["split"].get("only_fold") is not None:
        metrics["only_fold"] = numbers[0]
    held = held_fold >= 0
    grades = photos.dataset.grades
    kind = "grade" if photos.dataset.ordered else "class"
    warnings = one_grade_warnings(
        photos.labels[held], predicted[held], grades, held_fold[held], kind
    )
    if warnings:
        metrics["warnings"] = warnings
    if settings.get("abstain") is not None:  # what "check by hand" leaves of the held-out photos
        metrics["abstain"] = abstained(
            photos.labels[held], predicted[held], proba[held], settings["abstain"]
        )
    history = [row for r in results for row in r.history]
    # End to end (features + model) on the last fold's photos, decoding excluded.
    start = time.perf_counter()
    model.predict_proba(photos.images[test])
    per_photo_ms = 1000 * (time.perf_counter() - start) / max(1, len(test))
    timing = _timing(photos, results, fitted.features_s, per_photo_ms, resume, history)
    timing["model_bytes"] = sum(f.stat().st_size for f in (out / "model").rglob("*") if f.is_file())
    if history:
        folder.write_history(out, history)
        metrics["epochs_run"] = max(r["epoch"] for r in history)
    folder.write_predictions(out, photos.dataset, held_fold, proba, predicted)
    folder.write_json(out, "metrics.json", metrics)
    folder.write_json(out, "timing.json", timing)
    if photos.loaded.bad:
        folder.write_skipped(out, photos.loaded.bad)
    folder.clear_checkpoints(out)
    said = run_notes([r.notes for r in results])
    said += few_photos_note(photos.labels, splits, grades, kind)
    calibrated = temperature if calibrate else None
    return RunResult(out, metrics, timing, photos.notices + said, calibration=calibrated)
