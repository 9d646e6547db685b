"""``mangograde train``: resolve the family once -> load the photos once -> split -> fit
each fold (the stages in :mod:`mangograde.runs.fitting`) -> write the run folder (see
:mod:`mangograde.runs.folder`): the fold models, then what the folds say of their held-out
photos (metrics, calibration, fruits), then the timing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..basics.outputs import claim_folder
from ..basics.progress import progress_mode
from ..data import Dataset
from ..data.reject_photos import reject_photos
from ..evaluation import FruitLevel, evaluate, fruit_level, headline, one_grade_warnings
from ..evaluation.confidence import abstained, calibration
from ..evaluation.decisions import decide
from ..evaluation.fruits import Fruits, fruit_rule
from ..evaluation.not_a_fruit import NO_CHECK, NotAFruitModel
from ..evaluation.temperature import cross_fit
from ..images import ImageCache, load_images
from ..models import ddp
from ..models.bundle import library_versions
from ..models.registry import FoldData, ModelFamily, Settings, get_model, model_names
from ..runs import folder, staging
from ..runs.familiar import familiar_quantile, fit_familiarity, wants_not_a_fruit
from ..runs.fitting import (
    FoldResult,
    Job,
    Photos,
    Split,
    family_of,
    fit_many,
    fold_numbers,
    load_for,
    resolve_calibration,
    splits_for,
)
from ..runs.fold_notes import few_photos_note, run_notes
from ..runs.lock import RunLock
from ..runs.parallel import check_backend

FRUIT_BOOTSTRAP = 1000  # replicates for the fruit-level accuracy's interval


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
    rejects: str | Path | None = None,
) -> RunResult:
    """Train ``settings`` on ``dataset`` and write the run folder ``out``.

    The run is written into a staging folder beside ``out`` under an exclusive lock, and
    moved into ``out`` only when complete: a reader never sees half a run, and two
    trainings never mix. ``overwrite`` replaces a run already in ``out`` (only what that
    run wrote); ``resume`` continues a killed CNN run from its last checkpoints.
    ``backend`` (loky, threading, dask or ray; default: in this process, one fold after
    another) fits the folds in parallel, on the cluster at ``scheduler`` when given.
    ``rejects``: a folder of photos of what to reject, taught to the not-a-fruit check.
    Under ``torchrun`` (2+ processes) a CNN trains with DistributedDataParallel: every
    process fits every fold, process 0 alone writes the run and its checkpoints.
    """
    out = claim_folder(Path(out), inputs=[dataset.root])
    check_backend(backend, scheduler)
    reject_paths = None if rejects is None else reject_photos(rejects, dataset.paths)
    if reject_paths and not wants_not_a_fruit(settings):
        raise SettingsError("--reject-photos teaches the not-a-fruit check: drop "
                            "familiar.not_a_fruit=false, or the option.")  # fmt: skip
    reject_images = None  # decoded before any training: a bad photo stops it at once
    if reject_paths:
        geometry = get_model(settings["model"]).geometry(settings)
        reject_images = load_images(reject_paths, geometry, cache, progress=False).arrays
    calibration = resolve_calibration(settings, dataset)
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
                result = _write(family, settings, stage, fitted, resume, reject_images)
                staging.publish(stage, out, uuid.uuid4().hex)
            except KeyboardInterrupt:
                staging.discard_stage(stage, keep_checkpoints=True)  # --resume continues it
                raise
            except BaseException:
                staging.discard_stage(stage, keep_checkpoints=False)
                raise
    result.out = out
    result.notices += [calibration] if calibration else []
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


@dataclass
class _Graded:
    """What the folds gave their held-out photos, over all the run's photos: the fold that
    held each out (-1: none), its probabilities and grade; the fold results in fold order."""

    fold: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray
    results: list[FoldResult]

    @property
    def held(self) -> np.ndarray:
        return self.fold >= 0


def _write(
    family: ModelFamily,
    settings: Settings,
    out: Path,
    fitted: _Fitted,
    resume: bool,
    rejects: np.ndarray | None = None,
) -> RunResult:
    """Write the fitted folds into ``out`` (the staging folder): their models, then what
    they say of their held-out photos (calibration, metrics, fruits), then the timing."""
    photos = fitted.photos
    familiar, familiar_record = _familiarity(family, fitted, settings)
    check, check_record = _not_a_fruit(fitted, settings, rejects)
    graded = _save_folds(family, settings, out, fitted, familiar, check)
    calibrated = None
    if settings.get("calibration", "none") == "temperature":
        calibrated = _calibrate(photos, graded.results, fitted.splits, settings,
                                graded.proba, graded.predicted, graded.fold)  # fmt: skip
    metrics = _metrics(photos, fitted.splits, graded.results)
    metrics["familiar"] = familiar_record
    metrics["not_a_fruit"] = check_record
    if photos.dataset.groups is not None:
        metrics["fruit"] = _write_fruits(out, photos, graded, settings, calibrated)
    if calibrated is not None:
        folder.write_json(out, folder.CALIBRATION, calibrated)
    metrics |= _held_out_record(photos, graded, settings, fitted.numbers)
    history = [row for r in graded.results for row in r.history]
    per_photo_ms = _per_photo_ms(fitted)
    timing = _timing(photos, graded.results, fitted.features_s, per_photo_ms, resume, history)
    timing["model_bytes"] = sum(f.stat().st_size for f in (out / "model").rglob("*") if f.is_file())
    if history:
        folder.write_history(out, history)
        metrics["epochs_run"] = max(r["epoch"] for r in history)
    _write_tables(out, photos, graded, metrics, timing)
    said = run_notes([r.notes for r in graded.results])
    said += few_photos_note(photos.labels, fitted.splits, photos.dataset.grades, _kind(photos))
    return RunResult(out, metrics, timing, photos.notices + said, calibration=calibrated)


def _save_folds(
    family: ModelFamily,
    settings: Settings,
    out: Path,
    fitted: _Fitted,
    familiar: list[Any],
    check: NotAFruitModel | None,
) -> _Graded:
    """Save each fold's model (with its familiarity model and the run's not-a-fruit
    check, when there are) and gather what it gave its held-out photos."""
    photos = fitted.photos
    geometry = family.geometry(settings)
    grades = photos.dataset.grades
    n = len(photos.dataset)
    graded = _Graded(np.full(n, -1, dtype=np.int64), np.zeros((n, len(grades))),
                     np.zeros(n, dtype=np.int64), [])  # fmt: skip
    for i, (number, split, (result, model)) in enumerate(
        zip(fitted.numbers, fitted.splits, fitted.done, strict=True)
    ):
        name = folder.fold_name(number, settings)
        test = split[1]
        graded.fold[test], graded.proba[test] = number, result.proba
        graded.predicted[test] = result.predicted
        graded.results.append(result)
        record = {"fold": number, "n_train": int(len(split[0])), "n_held_out": int(len(test))}
        arrays = {**(familiar[i].arrays() if familiar else {}),
                  **(check.arrays() if check else {})} or None  # fmt: skip
        folder.save_fold_model(out, name, model, settings, grades, geometry, record, arrays)
    return graded


def _kind(photos: Photos) -> str:
    return "grade" if photos.dataset.ordered else "class"


def _write_fruits(
    out: Path,
    photos: Photos,
    graded: _Graded,
    settings: Settings,
    calibrated: dict[str, Any] | None,
) -> dict[str, Any]:
    """fruits.csv: the held-out photos graded as whole fruits; metrics.json's ``fruit``
    section. The fruits' own temperature joins ``calibrated`` (calibration.json)."""
    level = _fruit_level(photos, graded.fold, graded.proba, settings)
    record = _fruit_metrics(level, photos.dataset, settings)
    folder.write_fruit_predictions(out, level, photos.dataset.grades)
    if level.temperature is not None:
        assert calibrated is not None  # fit only with calibration=temperature
        calibrated["fruit"] = level.temperature
    return record


def _held_out_record(
    photos: Photos, graded: _Graded, settings: Settings, numbers: list[int]
) -> dict[str, Any]:
    """metrics.json's entries on the held-out photos: the one fold trained (--only-fold),
    grades the model never gives (warnings), and what ``abstain`` leaves to check by hand."""
    record: dict[str, Any] = {}
    if settings["split"].get("only_fold") is not None:
        record["only_fold"] = numbers[0]
    held = graded.held
    labels, predicted = photos.labels[held], graded.predicted[held]
    grades = photos.dataset.grades
    warnings = one_grade_warnings(labels, predicted, grades, graded.fold[held], _kind(photos))
    if warnings:
        record["warnings"] = warnings
    if settings.get("abstain") is not None:
        record["abstain"] = abstained(labels, predicted, graded.proba[held], settings["abstain"])
    return record


def _per_photo_ms(fitted: _Fitted) -> float:
    """End to end (features + model) on the last fold's held-out photos, decoding excluded."""
    model, test = fitted.done[-1][1], fitted.splits[-1][1]
    start = time.perf_counter()
    model.predict_proba(fitted.photos.images[test])
    return 1000 * (time.perf_counter() - start) / max(1, len(test))


def _write_tables(
    out: Path, photos: Photos, graded: _Graded, metrics: dict[str, Any], timing: dict[str, Any]
) -> None:
    """predictions.csv, metrics.json, timing.json and skipped.csv; the checkpoints go."""
    folder.write_predictions(out, photos.dataset, graded.fold, graded.proba, graded.predicted)
    folder.write_json(out, "metrics.json", metrics)
    folder.write_json(out, "timing.json", timing)
    if photos.loaded.bad:
        folder.write_skipped(out, photos.loaded.bad)
    folder.clear_checkpoints(out)


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


def _not_a_fruit(
    fitted: _Fitted,
    settings: Settings,
    rejects: np.ndarray | None = None,
) -> tuple[NotAFruitModel | None, dict[str, Any]]:
    """The run's not-a-fruit check, fit on the training photos in the general space (and
    the ``rejects`` photos, decoded as they are), its threshold set on the folds' held-out
    photos; and metrics.json's record of it."""
    from ..models.general_features import general_embedder

    if not wants_not_a_fruit(settings):
        return None, {"method": None, "note": "no not-a-fruit check: familiar.not_a_fruit=false"}
    found = general_embedder()
    if found is None:
        return None, {"method": None, "note": NO_CHECK}
    started = time.perf_counter()
    embed, digest = found
    try:
        others = None if rejects is None else embed(rejects)
        check = NotAFruitModel.fit(embed(fitted.photos.images), fitted.splits, digest,
                                   rejects=others)  # fmt: skip
    except SettingsError as exc:
        return None, {"method": None, "note": str(exc)}
    return check, {**check.record(), "seconds": round(time.perf_counter() - started, 3)}


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


def _data_share(rows: list[dict[str, Any]]) -> float:
    """Share of training time spent augmenting and assembling batches."""
    data = sum(r["data_s"] for r in rows)
    total = data + sum(r["step_s"] for r in rows)
    return data / total if total else 0.0
