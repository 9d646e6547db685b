"""``mangograde train``: split a dataset, fit one model per fold, and write the run folder.

A run folder holds ``config.yaml`` (the resolved settings), ``model/`` (one bundle, or
``fold-N/`` bundles with --cv), ``predictions.csv`` (every held-out photo),
``metrics.json``, ``timing.json`` and, when photos were skipped, ``skipped.csv``.
"""

from __future__ import annotations

import csv
import inspect
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, training_cnn
from .config import dump
from .data import Dataset
from .data.splits import holdout, kfold
from .errors import DatasetError, SettingsError
from .images import ImageCache, Resize, load_dataset_images
from .images.geometry import Geometry, resize_for
from .images.loader import LoadedImages
from .models.bundle import library_versions, save_bundle
from .progress import track

ModelFactory = Callable[[dict[str, Any]], Any]


def _classical(settings: dict[str, Any]) -> Any:
    from .models.classical import build_photo_classifier

    return build_photo_classifier(settings)


def _cnn(settings: dict[str, Any]) -> Any:
    from .models.blend import FoldEnsemble
    from .models.cnn_estimator import CNNClassifier

    params = {**settings["params"], "size": settings["features"]["size"]}
    network = CNNClassifier(**params, seed=settings["seed"])
    blend = settings["blend"]
    if blend["folds"] > 1:
        return FoldEnsemble(network, blend["folds"], blend["voting"], settings["seed"])
    return network


# model name -> builds an unfitted estimator from settings
MODEL_FACTORIES: dict[str, ModelFactory] = {
    "svm": _classical,
    "rf": _classical,
    "colour": _classical,
    "cnn": _cnn,
}


def geometry_for(settings: dict[str, Any]) -> Geometry:
    size = settings["features"]["size"]
    return Resize(resize_for(size) if settings["model"] == "cnn" else size)


def geometry_record(geometry: Geometry) -> dict[str, Any]:
    if isinstance(geometry, Resize):
        return {"kind": "resize", "size": geometry.size}
    return {"kind": "resize-center-crop", "resize": geometry.resize, "crop": geometry.crop}


def build_model(settings: dict[str, Any]) -> Any:
    model = settings["model"]
    if model not in MODEL_FACTORIES:
        raise SettingsError(
            f"Model {model!r} cannot be trained by this version of mangograde. "
            f"Available: {', '.join(sorted(MODEL_FACTORIES))}."
        )
    return MODEL_FACTORIES[model](settings)


def splits_for(settings: dict[str, Any], dataset: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """--cv K folds, or one --val-fraction hold-out; groups always stay whole."""
    split, seed = settings["split"], settings["seed"]
    if split.get("val_fraction"):
        return [holdout(dataset.labels, split["val_fraction"], dataset.groups, seed)]
    if not split.get("cv"):
        raise SettingsError("Choose --cv K (K >= 2) or --val-fraction F to hold photos out.")
    return kfold(dataset.labels, int(split["cv"]), dataset.groups, seed, dataset.grades)


def load_for(
    settings: dict[str, Any],
    dataset: Dataset,
    cache: ImageCache | None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> tuple[Dataset, LoadedImages]:
    """Decode every photo once, at the model's geometry; folds index this one array."""
    if not dataset.labelled:
        raise DatasetError(
            f"{dataset.root} has no grades: training needs a label CSV (--labels) or class folders."
        )
    return load_dataset_images(dataset, geometry_for(settings), cache, skip_bad, None, progress)


@dataclass
class RunResult:
    out: Path
    metrics: dict[str, Any]
    timing: dict[str, Any]


def shared_gram(settings: dict[str, Any], vectors: np.ndarray | None) -> np.ndarray | None:
    """For PCA + SVC on few wide photos: every photo's Gram matrix, once for all folds.

    Each fold's PCA then needs only its block. Rows are centred on the mean of all photos
    first, for precision only: the fold's PCA re-centres on its own photos, so nothing
    of the held-out photos reaches it.
    """
    if settings["model"] != "svm" or vectors is None:
        return None
    n, d = vectors.shape
    if settings["params"].get("solver", "auto") == "randomized" or n > min(d, 4000):
        return None
    centred = vectors - vectors.mean(axis=0)
    return centred @ centred.T


def fold_extras(model: Any) -> dict[str, float]:
    """OOB scores a forest reports, wherever it sits inside the model."""
    inner = getattr(model, "classifier_", model)
    inner = getattr(inner, "forest_", inner)
    found = {}
    for name, key in (("oob_score_", "oob_raw"), ("honest_oob_score_", "oob_honest")):
        if hasattr(inner, name):
            found[key] = float(getattr(inner, name))
    return found


RUN_FILES = (
    "config.yaml",
    "predictions.csv",
    "metrics.json",
    "timing.json",
    "skipped.csv",
    "history.csv",
    "curves.png",
)
RUN_FOLDERS = ("model", "checkpoints")


def prepare_out(out: Path, overwrite: bool, resume: bool = False) -> None:
    """Create the run folder; with ``overwrite``, clear a previous run from it (only a run:
    a folder without its config.yaml is never emptied). ``resume`` keeps it as it is."""
    if resume:
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SettingsError(
                f"{out} already exists and is not empty. Choose another --out, pass "
                "--overwrite to replace the run in it, or --resume to continue it."
            )
        if not (out / "config.yaml").is_file():
            raise SettingsError(
                f"{out} is not empty and holds no mangograde run (no config.yaml): refusing "
                "to overwrite it. Choose another --out."
            )
        for folder in RUN_FOLDERS:
            shutil.rmtree(out / folder, ignore_errors=True)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_predictions(
    path: Path, dataset: Dataset, folds: np.ndarray, proba: np.ndarray, predicted: np.ndarray
) -> None:
    held = np.flatnonzero(folds >= 0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["image", "group", "fold", "true", "predicted", *(f"p_{g}" for g in dataset.grades)]
        )
        for i in held:
            group = dataset.groups[i] if dataset.groups is not None else ""
            writer.writerow(
                [
                    dataset.image_ids[i],
                    group,
                    int(folds[i]),
                    dataset.grades[dataset.labels[i]],
                    dataset.grades[predicted[i]],
                    *(f"{p:.6f}" for p in proba[i]),
                ]
            )


def _write_skipped(path: Path, loaded: LoadedImages) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        for bad in loaded.bad:
            writer.writerow([str(bad.path), bad.reason])


def fit_and_predict(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    train: np.ndarray,
    test: np.ndarray,
    vectors: np.ndarray | None = None,
    gram: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Fit one fold and grade its held-out photos: (probabilities, grades, fit s, predict s).

    With ``vectors`` (features computed once for every photo) the model gets its fold's
    rows, and ``gram``'s block when there is one, instead of recomputing them. A model
    whose ``fit`` takes ``eval_set`` (a CNN) scores the held-out photos after every
    epoch, for its curves only.
    """
    start = time.perf_counter()
    fold_groups = groups[train] if groups is not None else None
    if "eval_set" in inspect.signature(model.fit).parameters:
        model.fit(images[train], labels[train], fold_groups, (images[test], labels[test]))
    elif vectors is None:
        model.fit(images[train], labels[train], fold_groups)
    else:
        block = None if gram is None else gram[np.ix_(train, train)]
        model.fit(images[train], labels[train], fold_groups, vectors=vectors[train], gram=block)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    if vectors is None:
        proba, predicted = model.predict_proba(images[test]), model.predict(images[test])
    else:
        inner = model.classifier_
        proba, predicted = inner.predict_proba(vectors[test]), inner.predict(vectors[test])
    return proba, predicted, fit_seconds, time.perf_counter() - start


def train_run(
    settings: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    data_record: dict[str, Any] | None = None,
    resume: bool = False,
) -> RunResult:
    """Train ``settings`` on ``dataset`` and write the run folder ``out``.

    ``resume`` continues a killed CNN run in ``out`` from its last checkpoints.
    """
    out = Path(out)
    cnn = settings["model"] == "cnn"
    build_model(settings)  # bad settings fail before any photo is decoded
    if cnn:
        training_cnn.check_settings(settings)
    resolved = {**settings, "data": data_record or {"root": str(dataset.root)}}
    resolved["mangograde"] = __version__
    if resume:
        training_cnn.check_resume(out, resolved)
    prepare_out(out, overwrite, resume)
    (out / "config.yaml").write_text(dump(resolved), encoding="utf-8")
    kept, loaded = load_for(settings, dataset, cache, skip_bad, progress)
    images, labels = loaded.arrays, kept.labels
    groups = np.asarray(kept.groups) if kept.groups is not None else None
    splits = splits_for(settings, kept)
    folds = np.full(len(kept), -1, dtype=np.int64)
    proba = np.zeros((len(kept), len(kept.grades)))
    predicted = np.zeros(len(kept), dtype=np.int64)
    accuracies, extras, fit_seconds, predict_seconds = [], [], [], []
    history: list[dict[str, Any]] = []
    geometry = geometry_for(settings)
    # Features that do not depend on the training photos are computed once, not per fold.
    start = time.perf_counter()
    vectors = getattr(build_model(settings), "feature_vectors", lambda _: None)(images)
    gram = shared_gram(settings, vectors)
    features_seconds = time.perf_counter() - start
    # A CNN draws its own bar per fold (rich shows one bar at a time).
    fold_bar = progress is not False and len(splits) > 1 and not cnn
    for number, (train, test) in enumerate(
        track(splits, len(splits), "Training folds", progress if fold_bar else False)
    ):
        model = build_model(settings)
        name = f"fold-{number}" if len(splits) > 1 else ""
        if cnn:
            training_cnn.configure(model, out / "checkpoints" / name, resume, progress)
        fold = fit_and_predict(model, images, labels, groups, train, test, vectors, gram)
        fold_proba, fold_pred, fit_s, predict_s = fold
        fit_seconds.append(fit_s)
        predict_seconds.append(predict_s)
        folds[test], proba[test], predicted[test] = number, fold_proba, fold_pred
        accuracies.append(float(np.mean(fold_pred == labels[test])))
        extras.append(fold_extras(model))
        history += training_cnn.histories(model, number)
        if cnn:
            training_cnn.configure(model, None, False, False)  # not saved in the bundle
        save_bundle(
            model,
            out / "model" / name,
            settings,
            kept.grades,
            {"geometry": geometry_record(geometry), "features": settings["features"]},
            {"fold": number, "n_train": int(len(train)), "n_held_out": int(len(test))},
        )
    metrics: dict[str, Any] = {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "accuracy_folds": accuracies,
        "n_images": len(kept),
        "n_held_out": int(np.sum(folds >= 0)),
        "n_folds": len(splits),
        "grades": list(kept.grades),
        "n_skipped": len(loaded.bad),
    }
    for key in ("oob_raw", "oob_honest"):
        values = [e[key] for e in extras if key in e]
        if values:
            metrics[key] = float(np.mean(values))
            metrics[f"{key}_folds"] = values
    # End to end (features + model) on the last fold's photos, decoding excluded.
    start = time.perf_counter()
    model.predict_proba(images[test])
    per_photo_ms = 1000 * (time.perf_counter() - start) / max(1, len(test))
    timing = {
        "decode_s": loaded.seconds,
        "features_s": features_seconds,
        "decode_cache_hits": loaded.cache_hits,
        "fit_s": float(np.sum(fit_seconds)),
        "fit_folds_s": fit_seconds,
        "predict_s": float(np.sum(predict_seconds)),
        "predict_per_photo_ms": per_photo_ms,
        "resumed": resume,  # then fit_s counts only the epochs trained after resuming
    }
    if history:
        training_cnn.write_history(out, history)
        timing["data_share"] = training_cnn.data_share(history)
        metrics["epochs_run"] = max(r["epoch"] for r in history)
    _write_predictions(out / "predictions.csv", kept, folds, proba, predicted)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    timing["versions"] = library_versions()
    (out / "timing.json").write_text(json.dumps(timing, indent=2), encoding="utf-8")
    if loaded.bad:
        _write_skipped(out / "skipped.csv", loaded)
    # The bundles hold the final weights; checkpoints only serve a run that is killed.
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return RunResult(out, metrics, timing)
