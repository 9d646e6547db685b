"""``mangograde adapt``: a run moved to a new camera, orchard or variety with a few
labelled photos, written as a new run that names its parent.

Each fold model is adapted by its family's ``adapt_fold`` (networks: BatchNorm statistics
measured on the new photos, then a short fine-tuning, of the whole network or of its last
layer; classical families: a refit on the fold's training photos and the new ones,
weighted). The familiarity model is
fit again on the adapted model's features of the new photos and of the fold's training
photos (when the parent's data is still readable), so that photos like the new ones count
as familiar. ``cv`` measures the adaptation honestly on the few photos: adapt on K-1
parts, grade the held-out part, beside the parent unadapted and the family's recipe
trained from scratch on the same K-1 parts.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..basics.outputs import claim_folder
from ..basics.progress import track
from ..data import Dataset, load_dataset
from ..data.splits import kfold
from ..evaluation.familiarity import FamiliarityModel, threshold_for
from ..evaluation.temperature import apply_temperature, fit_temperature
from ..images import ImageCache, load_images
from ..models.blend import model_probabilities
from ..models.bundle import Bundle
from ..models.registry import Adaptation, FoldData, ModelFamily, get_model
from ..runs import folder, staging
from ..runs.familiar import familiar_quantile
from ..runs.folder import Run, open_run
from ..runs.lock import RunLock

# None: the family's own default (networks: see models/families/cnn.py, measured in RESULTS.md)
DEFAULTS = {"epochs": None, "lr": None, "body": None, "weight": None}
_REFERENCE = 120  # parent photos a fold, at most, in the refit familiarity model


@dataclass
class NewPhotos:
    """The few photos to adapt on: decoded at the parent's geometry, with grade codes in
    the parent's order (None: ``--unlabelled``) and fruit groups."""

    dataset: Dataset
    images: np.ndarray
    codes: np.ndarray | None
    groups: np.ndarray | None


@dataclass
class AdaptResult:
    out: Path
    comparison: dict[str, Any] | None  # with cv: parent, adapted and scratch, same photos
    notices: list[str] = field(default_factory=list)


def adapt_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    settings = {**DEFAULTS, **overrides}
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"Unknown adapt setting {', '.join(unknown)}: the adapt section "
                            f"takes {', '.join(DEFAULTS)}.")  # fmt: skip
    epochs, lr = settings["epochs"], settings["lr"]
    if epochs is not None and not (isinstance(epochs, int) and epochs >= 1):
        raise SettingsError(
            f"adapt.epochs must be a whole number of at least 1, got {settings['epochs']!r}."
        )
    if lr is not None and not (isinstance(lr, (int, float)) and 0 < lr < 1):
        raise SettingsError(f"adapt.lr must be above 0 and below 1, got {settings['lr']!r}.")
    weight = settings["weight"]
    if weight is not None and not (isinstance(weight, (int, float)) and weight >= 1):
        raise SettingsError(f"adapt.weight must be at least 1, got {weight!r}.")
    if settings["body"] not in (None, "frozen", "train"):
        raise SettingsError(f"adapt.body must be frozen or train, not {settings['body']!r}.")
    return settings


def check_grades(codes: np.ndarray, grades: tuple[str, ...]) -> list[str]:
    """Refuse a grade with a single photo; say which of the run's grades have none."""
    counts = np.bincount(codes, minlength=len(grades))
    few = [g for g, n in zip(grades, counts, strict=True) if n == 1]
    if few:
        said = ", ".join(f"{g} (1)" for g in few)
        raise SettingsError(
            f"Adapting needs at least 2 photos of each grade it is given; {said} has one: "
            f"label 1 more photo of {' and 1 more of '.join(few)} (`mangograde suggest RUN "
            "PHOTOS` lists the photos the run is least sure of, the ones worth labelling), "
            "or leave that grade out."
        )
    missing = [g for g, n in zip(grades, counts, strict=True) if n == 0]
    return [f"No photo of {', '.join(missing)} among the labelled photos: the adapted run "
            "learns nothing new of it."] if missing else []  # fmt: skip


ParentPhotos = tuple[Any, np.ndarray]  # the parent's held-out table, its photos decoded
Task = Callable[[int, np.ndarray, "np.ndarray | None"], Adaptation]


def _parent_photos(
    parent: Run, geometry: Any, cache: ImageCache | None, progress: bool | None
) -> ParentPhotos | None:
    """The parent's held-out table and its photos decoded (None when unreadable)."""
    held = parent.held_out
    root = parent.data_root
    if held is None or root is None or not root.is_dir():
        return None
    try:
        data = parent.settings.get("data") or {}
        dataset = load_dataset(root, data.get("labels"), data.get("groups"), parent.grades,
                               annotations=data.get("annotations", "latest"))  # fmt: skip
    except (OSError, SettingsError):
        return None
    where = dict(zip(dataset.image_ids, dataset.paths, strict=True))
    if any(i not in where for i in held.image_ids):
        return None
    loaded = load_images([where[i] for i in held.image_ids], geometry, cache, False, None, progress)
    if len(loaded.kept) != len(held.image_ids):
        return None
    return held, loaded.arrays


def _sample(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))


def _mean_proba(models: list[Any], images: np.ndarray, n_grades: int) -> np.ndarray:
    return model_probabilities(models, images, np.arange(n_grades)).mean(axis=0)


def adapt_run(
    parent_dir: Path,
    new: NewPhotos,
    out: Path,
    overrides: dict[str, Any] | None = None,
    cv: int | None = None,
    fold: int | None = None,
    cache: ImageCache | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
) -> AdaptResult:
    """Adapt the run in ``parent_dir`` to ``new`` and write the adapted run in ``out``."""
    parent = open_run(parent_dir)
    roots = [r for r in (new.dataset.root, parent.data_root) if r is not None and r.is_dir()]
    out = claim_folder(Path(out), "--out", roots, runs=[parent_dir])  # before any work
    family = get_model(parent.model_kind)
    settings = adapt_settings(overrides or {})
    bundles = parent.bundles(fold)
    grades = parent.grades
    geometry = folder.geometry_from_record(bundles[0].manifest["preprocessing"]["geometry"])
    notices = [] if new.codes is None else check_grades(new.codes, grades)
    old = _parent_photos(parent, geometry, cache, progress)
    if old is None:
        notices.append(f"The parent's photos ({parent.data_root}) cannot be read: the "
                       "adapted run learns from the new photos alone and keeps no "
                       "familiarity model.")  # fmt: skip
    folds = [int(b.manifest.get("fold", i)) for i, b in enumerate(bundles)]

    def task(number: int, images: np.ndarray, codes: np.ndarray | None) -> Adaptation:
        if old is None:
            return Adaptation(images, codes, settings, progress=progress)
        held, photos = old
        trained = held.folds != number
        return Adaptation(images, codes, settings, photos[trained], held.true[trained], progress)

    comparison = None
    held_proba = None
    if cv is not None:
        comparison, held_proba, parts = _cross_check(parent, family, bundles, folds, new, cv,
                                                     task, progress)  # fmt: skip
    steps = track(zip(bundles, folds, strict=True), len(bundles), "Adapting the fold models",
                  progress)  # fmt: skip
    adapted = [family.adapt_fold(b.model, task(n, new.images, new.codes)) for b, n in steps]
    familiar, familiar_record = _familiarity(adapted, folds, new, old, parent)
    if familiar is None and old is not None:
        notices.append("This family gives no features: the adapted run has no familiarity model.")
    with RunLock(out):
        stage = staging.prepare_stage(out, overwrite, False)
        try:
            _write(stage, parent, bundles, folds, adapted, familiar, settings, new, cv,
                   comparison, held_proba, familiar_record, geometry)  # fmt: skip
            staging.publish(stage, out, uuid.uuid4().hex)
        except BaseException:
            staging.discard_stage(stage, keep_checkpoints=False)
            raise
    return AdaptResult(out, comparison, notices)


def _cross_check(
    parent: Run,
    family: ModelFamily,
    bundles: list[Bundle],
    folds: list[int],
    new: NewPhotos,
    cv: int,
    task: Task,
    progress: bool | None,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """Adapt on K-1 parts, grade the held-out part: parent, adapted and scratch."""
    if new.codes is None:
        raise SettingsError("--cv measures against grades: it needs --labels (not --unlabelled).")
    parts = kfold(new.codes, cv, None if new.groups is None else list(new.groups), 0)
    n_grades = len(parent.grades)
    arms = {k: np.zeros((len(new.images), n_grades)) for k in ("parent", "adapted", "scratch")}
    part_of = np.full(len(new.images), -1)
    models = [b.model for b in bundles]
    arms["parent"] = _mean_proba(models, new.images, n_grades)
    each = track(parts, len(parts), f"--cv {cv}: adapting and training from scratch on each part",
                 progress)  # fmt: skip
    for number, (train, test) in enumerate(each):
        part_of[test] = number
        mine = [family.adapt_fold(m, task(f, new.images[train], new.codes[train]))
                for m, f in zip(models, folds, strict=True)]  # fmt: skip
        arms["adapted"][test] = _mean_proba(mine, new.images[test], n_grades)
        scratch = family.build(copy.deepcopy(parent.settings))
        data = FoldData(new.images, new.codes, new.groups, train, test)
        family.attach(scratch, None, False, progress)
        family.fit_fold(scratch, data)
        arms["scratch"][test] = _mean_proba([scratch], new.images[test], n_grades)
    truth = new.codes
    comparison: dict[str, Any] = {"photos": int(len(truth)), "parts": int(cv)}
    for name, proba in arms.items():
        predicted = proba.argmax(axis=1)
        comparison[name] = {
            "accuracy": float(np.mean(predicted == truth)),
            "mae": float(np.mean(np.abs(predicted - truth))),
        }
    return comparison, (arms["adapted"], part_of), parts


def _familiarity(
    adapted: list[Any], folds: list[int], new: NewPhotos, old: ParentPhotos | None, parent: Run
) -> tuple[list[FamiliarityModel] | None, dict[str, Any] | None]:
    """Each adapted fold model's familiarity model, fit on its features of the new photos
    and of (up to 120 of) the fold's training photos; the threshold at the parent's
    quantile of its features of (up to 120 of) the fold's held-out photos."""
    if old is None or not all(callable(getattr(m, "embed", None)) for m in adapted):
        return None, None
    held, photos = old
    quantile = familiar_quantile(parent.settings)
    fitted, references = [], []
    for model, number in zip(adapted, folds, strict=True):
        trained = _sample(np.flatnonzero(held.folds != number), _REFERENCE, number)
        unseen = _sample(np.flatnonzero(held.folds == number), _REFERENCE, number)
        features = np.concatenate([model.embed(photos[trained]), model.embed(new.images)])
        familiar = FamiliarityModel.fit(features)
        reference = familiar.score(model.embed(photos[unseen]))
        fitted.append(familiar)
        references.append(reference)
    threshold = threshold_for(np.concatenate(references), quantile)
    models = [dataclasses.replace(f, threshold=threshold, reference=r)
              for f, r in zip(fitted, references, strict=True)]  # fmt: skip
    new_scores = np.mean(
        [m.score(x.embed(new.images)) for m, x in zip(models, adapted, strict=True)], axis=0
    )
    record = {"quantile": quantile, "threshold": threshold,
              "new_photos_flagged": float(np.mean(new_scores > threshold))}  # fmt: skip
    return models, record


def _write(
    stage: Path,
    parent: Run,
    bundles: list[Bundle],
    folds: list[int],
    adapted: list[Any],
    familiar: list[FamiliarityModel] | None,
    settings: dict[str, Any],
    new: NewPhotos,
    cv: int | None,
    comparison: dict[str, Any] | None,
    held_proba: tuple[np.ndarray, np.ndarray] | None,
    familiar_record: dict[str, Any] | None,
    geometry: Any,
) -> None:
    run_settings = copy.deepcopy(parent.settings)
    data = new.dataset
    run_settings["data"] = {"root": str(data.root), "layout": data.layout,
                            "n_photos": int(len(new.images)), "synthetic": False}  # fmt: skip
    run_settings["adapt"] = {
        "parent": str(parent.path.resolve()), "parent_name": parent.name,
        "photos": str(data.root), "n_photos": int(len(new.images)),
        "labelled": new.codes is not None, "folds": [int(f) for f in folds], **settings,
    }  # fmt: skip
    folder.write_config(stage, run_settings)
    trained = {k: v for k, v in run_settings.items() if k not in folder.RECORDED}
    for bundle, number, model, i in zip(bundles, folds, adapted, range(len(folds)), strict=True):
        record = {k: bundle.manifest[k] for k in ("fold", "n_train", "n_held_out")
                  if k in bundle.manifest} | {"adapted_on": int(len(new.images))}  # fmt: skip
        arrays = None if familiar is None else familiar[i].arrays()
        name = folder.fold_name(number, run_settings) or "fold-0"
        folder.save_fold_model(stage, name, model, trained, parent.grades, geometry, record,
                               arrays)  # fmt: skip
    metrics: dict[str, Any] = {"adapt": comparison or {}, "familiar": familiar_record}
    calibration = parent.path / folder.CALIBRATION
    if held_proba is not None:
        proba, part_of = held_proba
        if parent.settings.get("calibration") == "temperature":
            temperature = fit_temperature(proba, new.codes)
            proba = apply_temperature(proba, temperature)
            folder.write_json(stage, folder.CALIBRATION, {"method": "temperature",
                              "temperature": temperature, "per_fold": {}})  # fmt: skip
        predicted = proba.argmax(axis=1)
        metrics |= {"accuracy": float(np.mean(predicted == new.codes)),
                    "n_held_out": int(len(predicted)), "n_images": int(len(predicted))}  # fmt: skip
        folder.write_predictions(stage, data, part_of, proba, predicted)
    elif calibration.is_file():
        shutil.copyfile(calibration, stage / folder.CALIBRATION)
    folder.write_json(stage, "metrics.json", metrics)
    folder.write_json(stage, "timing.json", {})
