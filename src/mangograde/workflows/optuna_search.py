"""``mangograde search --optuna-storage URL --trials N``: an SVM search that several
processes, on one machine or many, share through an Optuna study in a database (a SQLite
file here, PostgreSQL across machines) instead of a scheduler.

Each process decodes the photos and fits every fold's PCA once, then asks the study for
settings, scores them on the same folds by fruit and tells the study the mean accuracy. The
grid's values bound the search: C and gamma on a log scale between their smallest and
largest values (gamma's words, like ``scale``, as choices), n_components likewise.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import SettingsError, without_password
from ..basics.progress import Bar
from ..data import Dataset
from ..images import ImageCache
from ..models.classical import features_of, pixel_features
from ..runs.fitting import load_for, splits_for
from .search import reduce_fold, search_grid, write_csv


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SettingsError(
            "--optuna-storage needs Optuna, an optional extra: pip install 'mangograde[tune]' "
            "(or pip install optuna). Without it, `search` runs the grid."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _numbers(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)


def _suggest(trial: Any, grid: dict[str, list[Any]]) -> dict[str, Any]:
    """Settings for ``trial`` within the grid's bounds."""
    chosen = {}
    for key, values in grid.items():
        if len(set(map(str, values))) == 1:
            chosen[key] = values[0]
        elif key == "n_components" and all(isinstance(v, int) for v in values):
            chosen[key] = trial.suggest_int(key, min(values), max(values), log=True)
        elif key != "n_components" and _numbers(values):
            chosen[key] = trial.suggest_float(key, min(values), max(values), log=True)
        else:
            chosen[key] = trial.suggest_categorical(key, values)
    return chosen


def _fingerprint(settings: dict[str, Any], grid: dict[str, Any], dataset: Dataset) -> str:
    """What trials of one study must share: the search space, the recipe and the photos."""
    record = {
        "grid": grid,
        "params": settings["params"],
        "features": settings["features"],
        "split": settings["split"],
        "seed": settings["seed"],
        "photos": sorted(zip(dataset.image_ids, map(str, dataset.labels), strict=True)),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _create_or_load(optuna: Any, storage: str, name: str) -> Any:
    """The study; processes that start together on a new database race to create its
    tables, and the losers retry."""
    for attempt in range(4):
        try:
            return optuna.create_study(
                storage=storage, study_name=name, direction="maximize", load_if_exists=True
            )
        except Exception as exc:  # noqa: BLE001 - a bad URL or an unreachable database
            if attempt == 3:
                raise SettingsError(
                    f"Cannot open the Optuna study {name!r} at {without_password(storage)}: "
                    f"{without_password(str(exc))[:500]}. Give a database URL such as "
                    "sqlite:///search.db or postgresql://user@host/db."
                ) from None
            time.sleep(0.5 * (attempt + 1))


def _open_study(optuna: Any, storage: str, name: str, fingerprint: str) -> Any:
    study = _create_or_load(optuna, storage, name)
    known = study.user_attrs.get("mangograde")
    if known is None:
        study.set_user_attr("mangograde", fingerprint)
    elif known != fingerprint:
        raise SettingsError(
            f"The Optuna study {name!r} at {without_password(storage)} holds trials of another "
            "search (other "
            "photos, folds, recipe or grid). Give it another --study name."
        )
    return study


def _ask(optuna: Any, study: Any, seed: int) -> Any:
    """A new trial whose draws depend on the seed and its number, which the database hands
    out once: processes that start together do not propose the same settings, and one
    process alone is reproducible."""
    trial = study.ask()
    # Parameters are drawn at suggest time, by the sampler the study holds then.
    study.sampler = optuna.samplers.TPESampler(seed=seed + trial.number, constant_liar=True)
    return trial


def svm_optuna(
    settings: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    storage: str,
    trials: int,
    study_name: str = "mangograde-search",
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Run ``trials`` trials of the shared study; write and return every finished trial
    of the study (this process's and the others') as ``search.csv`` rows."""
    if settings["model"] != "svm":
        raise SettingsError("`mangograde search` tunes the SVM (--model svm); use `sweep`.")
    if trials < 1:
        raise SettingsError(f"--trials must be 1 or more, got {trials}.")
    optuna = _optuna()
    grid = search_grid(settings)
    fingerprint = _fingerprint(settings, grid, dataset)
    study = _open_study(optuna, storage, study_name, fingerprint)
    photos = load_for(settings, dataset, cache, skip_bad, progress)
    vectors = features_of(pixel_features(settings["features"]), photos.images)
    largest = max(v for v in grid["n_components"] if isinstance(v, int))
    folds = [
        reduce_fold(settings, largest, vectors, photos.labels, split)
        for split in splits_for(settings, photos.dataset)
    ]
    with Bar(trials, "Optuna trials", progress) as bar:
        for _ in range(trials):
            trial = _ask(optuna, study, settings["seed"])
            chosen = _suggest(trial, grid)
            scored = [
                fold.score(settings["params"], chosen["n_components"], chosen["C"],
                           chosen["gamma"])
                for fold in folds
            ]  # fmt: skip
            accuracies = [a for a, _ in scored]
            trial.set_user_attr("settings", chosen)
            trial.set_user_attr("folds", accuracies)
            trial.set_user_attr("n_components_used", max(u for _, u in scored))
            study.tell(trial, float(np.mean(accuracies)))
            bar.advance(1, f"trial {trial.number}: {np.mean(accuracies):.3f}")
    rows = [_row(t) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    write_csv(Path(out) / "search.csv", rows)
    return rows


def _row(trial: Any) -> dict[str, Any]:
    folds, chosen = trial.user_attrs["folds"], trial.user_attrs["settings"]
    return {
        "trial": trial.number,
        "n_components": chosen["n_components"],
        "n_components_used": trial.user_attrs["n_components_used"],
        "C": chosen["C"],
        "gamma": chosen["gamma"],
        "accuracy": float(trial.value),
        "accuracy_std": float(np.std(folds)),
        **{f"fold_{f}": float(s) for f, s in enumerate(folds)},
    }
