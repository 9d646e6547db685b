"""Metrics of graded photos (pure functions) and the evaluation record a run saves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bootstrap import Interval, bootstrap_intervals, count_units
from .confidence import abstained, calibration, coverage
from .decisions import decide
from .fruits import Fruits, combine, fruit_folds, fruit_labels
from .metrics import (
    SCALAR_METRICS,
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    log_loss,
    macro_f1,
    mean_grade_error,
    per_grade_scores,
    quadratic_kappa,
    two_grade_error_rate,
)

__all__ = [
    "FruitLevel",
    "one_grade_warnings",
    "SCALAR_METRICS",
    "Interval",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_intervals",
    "confusion_matrix",
    "evaluate",
    "fruit_level",
    "headline",
    "log_loss",
    "macro_f1",
    "mean_grade_error",
    "per_grade_scores",
    "quadratic_kappa",
    "two_grade_error_rate",
]


UNORDERED_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    grades: Sequence[str],
    proba: np.ndarray | None = None,
    groups: Sequence[str] | np.ndarray | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    ordered: bool = True,
) -> dict[str, Any]:
    """Every metric of one set of graded photos, as a JSON-ready record.

    Parameters
    ----------
    y_true, y_pred : grade codes, 0 = the best grade of ``grades``.
    grades : grade names, best first.
    proba : ``(n_photos, n_grades)`` probabilities, for the log loss.
    groups : the fruit of each photo; the bootstrap then resamples fruits.
    n_boot, confidence, seed : the bootstrap's replicates, interval width and seed.
    ordered : False for classes with no order: only accuracy, balanced accuracy and macro
        F1 are measured (no grade distance, kappa or log loss).

    Returns
    -------
    dict with ``metrics`` (name -> value, low, high), ``per_grade``, ``confusion``,
    ``confusion_normalised`` and ``bootstrap`` (how the intervals were drawn); with
    ``proba`` also ``calibration`` (ECE and its bins) and ``coverage`` (accuracy on the
    most confident share of photos, and the threshold that reaches 99%).
    """
    k = len(grades)
    intervals = bootstrap_intervals(y_true, y_pred, k, groups, proba, n_boot, confidence, seed)
    counts = confusion_matrix(y_true, y_pred, k)
    kept = intervals if ordered else {k: intervals[k] for k in UNORDERED_METRICS}
    trust = {}
    if proba is not None and len(proba):
        trust = {"calibration": calibration(y_true, proba),
                 "coverage": coverage(y_true, y_pred, proba)}  # fmt: skip
    return {
        "n_photos": int(counts.sum()),
        "grades": list(grades),
        "ordered": ordered,
        "metrics": {name: interval.as_dict() for name, interval in kept.items()},
        "per_grade": per_grade_scores(y_true, y_pred, grades),
        "confusion": counts.tolist(),
        "confusion_normalised": confusion_matrix(y_true, y_pred, k, normalise=True).tolist(),
        "bootstrap": {
            "replicates": n_boot,
            "confidence": confidence,
            "seed": seed,
            "unit": "fruit" if groups is not None else "photo",
            "n_units": count_units(groups, int(counts.sum())),
        },
        "warnings": one_grade_warnings(
            y_true, y_pred, grades, kind="grade" if ordered else "class"
        ),
        **trust,
    }


def one_grade_warnings(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    grades: Sequence[str],
    folds: Sequence[int] | np.ndarray | None = None,
    kind: str = "grade",
) -> list[str]:
    """Warnings where a model gave every photo one grade although the photos hold several:
    over all photos, and per fold when ``folds`` (each photo's fold) is given."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(np.unique(y_true)) < 2:
        return []
    found = []
    if len(np.unique(y_pred)) == 1:
        found.append(
            f"Every one of the {len(y_pred)} photos was graded {grades[y_pred[0]]}, though they "
            f"hold {len(np.unique(y_true))} {kind}s: the model has collapsed to one {kind} and "
            "must not be used. Look for duplicate or blank photos (`mangograde data inspect`), "
            "give it more training, and retrain."
        )
    elif folds is not None:
        folds = np.asarray(folds)
        stuck = [
            f"fold {f} (all {grades[y_pred[folds == f][0]]})"
            for f in np.unique(folds)
            if len(np.unique(y_pred[folds == f])) == 1 and len(np.unique(y_true[folds == f])) > 1
        ]
        if stuck:
            found.append(
                f"{len(stuck)} fold model(s) graded all their held-out photos the same: "
                f"{', '.join(stuck)}. Those models have collapsed to one {kind}; look for "
                "duplicate or blank photos (`mangograde data inspect`), give them more "
                "training, and retrain."
            )
    return found


@dataclass
class FruitLevel:
    """Held-out photos graded as whole fruits: fruit ``i`` is ``fruits.names[i]``."""

    fruits: Fruits
    true: np.ndarray
    folds: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray
    rule: str
    mixed_labels: int  # fruits whose photos carry different grades
    temperature: dict[str, Any] | None = None  # calibration=temperature, fit on fruits


def fruit_level(
    true: np.ndarray,
    proba: np.ndarray,
    folds: np.ndarray,
    fruits: Fruits,
    rule: str = "mean",
    decision: str = "argmax",
    calibrate: bool = False,
) -> FruitLevel:
    """Out-of-fold photos as fruits. With ``calibrate``, each fold's fruits are scaled by a
    temperature fit on the other folds' fruits (and the run's on all of them), as
    calibration=temperature does for photos."""
    from .temperature import cross_fit

    fruit_true, mixed = fruit_labels(true, fruits)
    fruit_fold = fruit_folds(folds, fruits)
    fruit_proba = combine(proba, fruits, rule)
    temperature = None
    if calibrate:
        fruit_proba, per_fold, overall = cross_fit(fruit_proba, fruit_true, fruit_fold)
        temperature = {"temperature": overall, "per_fold": {str(k): v for k, v in per_fold.items()}}
    predicted = decide(fruit_proba, decision)
    return FruitLevel(
        fruits, fruit_true, fruit_fold, fruit_proba, predicted, rule, mixed, temperature
    )


def headline(
    record: dict[str, Any], abstain: float | None = None, level: FruitLevel | None = None
) -> dict[str, Any]:
    """The figures a summary line shows, from an :func:`evaluate` record: accuracy with its
    interval, QWK, best<->worst grade errors, ECE, accuracy on the surest 90% and the share
    graded at 99% accuracy (and, with ``abstain``, what it leaves to check)."""
    metrics = record["metrics"]
    confusion = np.asarray(record["confusion"])
    reach = (record.get("coverage") or {}).get("reaches_target")
    found: dict[str, Any] = {
        "n": record["n_photos"],
        "accuracy": metrics["accuracy"],
        "qwk": metrics.get("quadratic_kappa", {}).get("value"),
        "extreme_errors": int(confusion[0, -1] + confusion[-1, 0]) if record["ordered"] else None,
        "ece": (record.get("calibration") or {}).get("ece"),
        "accuracy_at_90": (record.get("coverage") or {}).get("accuracy_at_90"),
        "coverage_at_99": 0.0 if reach is None else reach["coverage"],
    }
    if level is not None:
        found.update(rule=level.rule, mixed_labels=level.mixed_labels)
        if abstain is not None:
            found["abstain"] = abstained(level.true, level.predicted, level.proba, abstain)
    return found
