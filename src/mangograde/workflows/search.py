"""Group-aware grid search (``mangograde search``), one-parameter sweeps
(``mangograde sweep``) and t-SNE maps (``mangograde tsne``)."""

from __future__ import annotations

import copy
import csv
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import SettingsError
from ..data import Dataset
from ..images import ImageCache
from ..models.classical import features_of, pixel_features
from ..models.svm import PCASVC, GramPCA
from ..report.figures import search_heatmap, sweep_plot, tsne_plot
from ..runs.fitting import Job, family_of, fit_many, load_for, splits_for
from ..runs.parallel import engine

SWEEPABLE = (
    "n_estimators",
    "max_features",
    "min_samples_leaf",
    "min_samples_split",
    "max_depth",
    "max_samples",
    "selection_scaling",
    "n_components",
)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def search_grid(settings: dict[str, Any]) -> dict[str, list[Any]]:
    grid = {key: list(values) for key, values in settings.get("search", {}).items()}
    if not grid:
        raise SettingsError("The settings hold no search grid (a `search:` section).")
    unknown = sorted(set(grid) - {"C", "gamma", "n_components"})
    if unknown:
        raise SettingsError(
            f"The SVM search varies C, gamma and n_components; {', '.join(unknown)} cannot be "
            "searched. Use `mangograde sweep` for a single other parameter."
        )
    for key in ("C", "gamma", "n_components"):
        grid.setdefault(key, [settings["params"][key]])
    return grid


def svm_search(
    settings: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    backend: str | None = None,
    scheduler: str | None = None,
) -> list[dict[str, Any]]:
    """Accuracy of every (n_components, C, gamma) of the grid on the run's folds (the
    folds in parallel on ``backend`` if given).

    Each fold's PCA is fitted once with the largest number of components: the first
    ``k`` of an exact PCA are the PCA with ``k`` components, so smaller grids reuse them.
    Writes ``search.csv`` and ``search.png`` into ``out``.
    """
    if settings["model"] != "svm":
        raise SettingsError("`mangograde search` tunes the SVM (--model svm); use `sweep`.")
    grid = search_grid(settings)
    photos = load_for(settings, dataset, cache, skip_bad, progress)
    vectors = features_of(pixel_features(settings["features"]), photos.images)
    splits = splits_for(settings, photos.dataset)
    labels = photos.labels
    combos = list(itertools.product(grid["n_components"], grid["C"], grid["gamma"]))
    tasks = [(settings, combos, vectors, labels, split) for split in splits]
    with engine(backend, scheduler, shared=[vectors, labels]) as run_all:
        folds = run_all(_search_fold, tasks, "Searching folds", progress)
    scores = np.stack([accuracy for accuracy, _ in folds], axis=1)
    used = np.max([components for _, components in folds], axis=0)
    rows = [
        {
            "n_components": n,
            "n_components_used": int(used[i]),
            "C": c,
            "gamma": gamma,
            "accuracy": float(scores[i].mean()),
            "accuracy_std": float(scores[i].std()),
            **{f"fold_{f}": float(s) for f, s in enumerate(scores[i])},
        }
        for i, (n, c, gamma) in enumerate(combos)
    ]
    out = Path(out)
    write_csv(out / "search.csv", rows)
    search_heatmap(rows, out / "search.png", f"SVM grid search, {len(splits)}-fold by group")
    return rows


@dataclass
class _ReducedFold:
    """One fold's photos in the PCA space of its training photos (largest n searched)."""

    pca: GramPCA
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray

    def score(self, params: dict[str, Any], n: int, c: float, gamma: Any) -> tuple[float, int]:
        """Accuracy of (n components, C, gamma) on the held-out photos; components used."""
        svm = PCASVC(n, params["whiten"], params["solver"], params["kernel"], c, gamma, False)
        svm.fit_reduced(self.pca, self.train, self.train_labels)
        accuracy = float(np.mean(svm.predict_reduced(self.test) == self.test_labels))
        return accuracy, int(svm.pca_.n_components_)


def reduce_fold(
    settings: dict[str, Any],
    largest: int,
    vectors: np.ndarray,
    labels: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
) -> _ReducedFold:
    """The fold's PCA, fitted once with the largest number of components: the first ``k``
    of an exact PCA are the PCA with ``k`` components, so smaller ones reuse it."""
    train, test = split
    params = settings["params"]
    pca = GramPCA(largest, params["whiten"], params["solver"], random_state=settings["seed"])
    with warnings.catch_warnings():  # too many components: n_components_used says so
        warnings.simplefilter("ignore", UserWarning)
        reduced_train = pca.fit_transform(vectors[train])
    return _ReducedFold(pca, reduced_train, pca.transform(vectors[test]), labels[train],
                        labels[test])  # fmt: skip


def _search_fold(
    settings: dict[str, Any],
    combos: list[tuple[int, float, Any]],
    vectors: np.ndarray,
    labels: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """One fold of the grid: each combination's accuracy and components used."""
    fold = reduce_fold(settings, max(n for n, _, _ in combos), vectors, labels, split)
    scored = [fold.score(settings["params"], *combo) for combo in combos]
    return np.array([a for a, _ in scored]), np.array([u for _, u in scored], dtype=np.int64)


def parse_values(text: str) -> list[Any]:
    """``"100,200"`` -> [100, 200]; ``"sqrt,0.1"`` -> ["sqrt", 0.1]; ``none`` -> None."""
    import yaml

    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = yaml.safe_load(part)
        values.append(None if isinstance(value, str) and value.lower() == "none" else value)
    if not values:
        raise SettingsError(f"--values needs a comma-separated list, got {text!r}.")
    return values


def forest_sweep(
    settings: dict[str, Any],
    dataset: Dataset,
    param: str,
    values: Sequence[Any],
    out: str | Path,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    backend: str | None = None,
    scheduler: str | None = None,
) -> list[dict[str, Any]]:
    """Grouped CV accuracy and raw / honest OOB of the forest for each value of ``param``
    (every value and fold an independent fit, in parallel on ``backend`` if given).

    Writes ``sweep.csv`` and ``sweep.png`` (the study's figures 12-17) into ``out``.
    """
    if settings["model"] != "rf":
        raise SettingsError("`mangograde sweep` varies a forest parameter (--model rf).")
    if param not in SWEEPABLE:
        raise SettingsError(f"Cannot sweep {param!r}. Sweepable: {', '.join(SWEEPABLE)}.")
    photos = load_for(settings, dataset, cache, skip_bad, progress)
    splits = splits_for(settings, photos.dataset)
    trials = []
    for value in values:
        trial = copy.deepcopy(settings)
        trial["params"][param] = value
        trial["params"]["oob_score"] = True
        family_of(trial)  # every value checked before any fit
        trials.append(trial)
    jobs = [Job(trial, split, n) for trial in trials for n, split in enumerate(splits)]
    done = fit_many(
        jobs, photos, progress=progress, backend=backend, scheduler=scheduler,
        description=f"Sweeping {param}",
    )  # fmt: skip
    rows = []
    for i, value in enumerate(values):
        folds = done[i * len(splits) : (i + 1) * len(splits)]
        accuracies = [
            float(np.mean(fold.predicted == photos.labels[split[1]]))
            for (fold, _), split in zip(folds, splits, strict=True)
        ]
        oobs = [fold.scores for fold, _ in folds]
        rows.append(
            {
                "value": value,
                "cv_accuracy": float(np.mean(accuracies)),
                "cv_std": float(np.std(accuracies)),
                "oob_raw": float(np.mean([o["oob_raw"] for o in oobs])),
                "oob_honest": float(np.mean([o["oob_honest"] for o in oobs])),
            }
        )
    out = Path(out)
    write_csv(out / "sweep.csv", rows)
    sweep_plot(rows, param, out / "sweep.png")
    return rows


def tsne_map(
    settings: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    dimensions: int = 2,
    pca_components: int | None = 50,
    perplexity: float = 30.0,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
) -> tuple[Path, np.ndarray]:
    """t-SNE of the pixel (or PCA) features, coloured by grade, as a PNG (+ a CSV beside it)."""
    from sklearn.manifold import TSNE

    if dimensions not in (2, 3):
        raise SettingsError(f"t-SNE draws 2 or 3 dimensions, not {dimensions}.")
    photos = load_for(settings, dataset, cache, skip_bad, progress)
    kept = photos.dataset
    if len(kept) < 5:
        raise SettingsError(f"t-SNE needs at least 5 photos; {dataset.root} has {len(kept)}.")
    vectors = features_of(pixel_features(settings["features"]), photos.images)
    if pca_components:
        vectors = GramPCA(min(pca_components, len(kept) - 1)).fit_transform(vectors)
    tsne = TSNE(
        dimensions,
        perplexity=min(perplexity, (len(kept) - 1) / 3),
        init="pca",
        random_state=settings["seed"],
    )
    coords = tsne.fit_transform(vectors.astype(np.float64))
    out = Path(out)
    what = f"PCA {pca_components} of " if pca_components else ""
    title = f"t-SNE of {what}{settings['features']['kind']} ({len(kept)} photos)"
    tsne_plot(coords, kept.labels, kept.grades, out, title)
    rows = [
        {"image": i, "grade": kept.grades[g], **{f"t{d}": float(c[d]) for d in range(dimensions)}}
        for i, g, c in zip(kept.image_ids, kept.labels, coords, strict=True)
    ]
    write_csv(out.with_suffix(".csv"), rows)
    return out, coords
