"""Classical (non-deep) models on ColourTexture features, on the study's 5 grouped folds.

    python benchmarks/explore_classical.py [--size 256] [--cache DIR] [--boosting]

Loads mango-grading as the study does (squashed to 256 x 256, fruit-grouped stratified
5-fold, seed 0), extracts ColourTexture features once (the transformer learns nothing in
``fit``, so this equals extracting them inside every fold), then fits each candidate
classifier on each fold's training photos. Prints per-fold and mean accuracy, and the
time of the 5-fold run (features included). Gradient boosting is left out unless asked
for: about a minute on one thread, far longer when its threads contend for busy cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from _common import data_dir, machine
from mangograde.data import load_dataset
from mangograde.data.splits import kfold
from mangograde.features.colour import ColourTexture
from mangograde.images import ImageCache, Resize, load_dataset_images


def features() -> ColourTexture:
    return ColourTexture(size=128, scales=(3.0, 6.0, 12.0))


def candidates(boosting: bool) -> dict[str, BaseEstimator]:
    """Classifiers that follow ColourTexture; all seeded, at most 2 jobs."""

    def logistic() -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))

    def extra() -> ExtraTreesClassifier:
        return ExtraTreesClassifier(n_estimators=500, random_state=0, n_jobs=2)

    models: dict[str, BaseEstimator] = {
        "soft vote: logistic C=0.1 + extra trees 500": VotingClassifier(
            [("logistic", logistic()), ("trees", extra())], voting="soft"
        ),
        "extra trees 500": extra(),
        "random forest 500": RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=2),
        "scaler + logistic C=0.1": logistic(),
        "scaler + linear SVC C=0.01": make_pipeline(StandardScaler(), SVC(kernel="linear", C=0.01)),
        "scaler + RBF SVC C=1": make_pipeline(StandardScaler(), SVC(C=1.0)),
    }
    if boosting:
        models["hist gradient boosting"] = HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=200, max_leaf_nodes=15, random_state=0
        )
    return models


def evaluate(
    model: BaseEstimator, x: np.ndarray, y: np.ndarray, folds: list
) -> tuple[list[float], np.ndarray, float]:
    """Per-fold accuracy, out-of-fold predictions and seconds for the 5 fits."""
    start = time.perf_counter()
    predicted = np.empty_like(y)
    accuracy = []
    for train, test in folds:
        fitted = clone(model).fit(x[train], y[train])
        predicted[test] = fitted.predict(x[test])
        accuracy.append(float(np.mean(predicted[test] == y[test])))
    return accuracy, predicted, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="photos are squashed to this")
    parser.add_argument("--cache", default=None, help="image cache folder (default: the usual)")
    parser.add_argument("--boosting", action="store_true", help="add gradient boosting (slow)")
    args = parser.parse_args()

    root = data_dir("mango-grading")
    ds = load_dataset(root, groups=root / "fruit_groups.csv")
    ds, loaded = load_dataset_images(ds, Resize(args.size), ImageCache(args.cache), progress=False)
    images, y = np.asarray(loaded.arrays), np.asarray(ds.labels)
    folds = kfold(y, 5, ds.groups, 0)

    transformer = features()
    start = time.perf_counter()
    x = transformer.fit_transform(images)
    feature_seconds = time.perf_counter() - start
    print(f"machine: {machine()}")
    print(f"{len(y)} photos at {args.size}x{args.size}, grades {', '.join(ds.grades)}")
    params = ", ".join(f"{k}={v!r}" for k, v in transformer.get_params().items())
    print(f"features: ColourTexture({params})")
    print(f"  {x.shape[1]} per photo, {feature_seconds:.2f} s for all {len(y)} photos")
    print(f"{'model':46s} {'mean':>6s}  per fold                          seconds")

    results = []
    for name, model in candidates(args.boosting).items():
        with threadpool_limits(2):  # OpenMP / BLAS threads, as n_jobs
            accuracy, predicted, seconds = evaluate(model, x, y, folds)
        results.append((float(np.mean(accuracy)), name, predicted))
        folds_text = " ".join(f"{a:.3f}" for a in accuracy)
        print(f"{name:46s} {np.mean(accuracy):.4f}  {folds_text}  {seconds + feature_seconds:6.1f}")

    best, name, predicted = max(results, key=lambda r: r[0])
    print(f"\nbest: {name} ({best:.4f}); out-of-fold confusion, rows true, columns predicted:")
    print(confusion_matrix(y, predicted))


if __name__ == "__main__":
    main()
