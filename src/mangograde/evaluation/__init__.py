"""Metrics of graded photos (pure functions) and the evaluation record a run saves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .bootstrap import Interval, bootstrap_intervals, count_units
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
    "SCALAR_METRICS",
    "Interval",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_intervals",
    "confusion_matrix",
    "evaluate",
    "log_loss",
    "macro_f1",
    "mean_grade_error",
    "per_grade_scores",
    "quadratic_kappa",
    "two_grade_error_rate",
]


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    grades: Sequence[str],
    proba: np.ndarray | None = None,
    groups: Sequence[str] | np.ndarray | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of one set of graded photos, as a JSON-ready record.

    Parameters
    ----------
    y_true, y_pred : grade codes, 0 = the best grade of ``grades``.
    grades : grade names, best first.
    proba : ``(n_photos, n_grades)`` probabilities, for the log loss.
    groups : the fruit of each photo; the bootstrap then resamples fruits.
    n_boot, confidence, seed : the bootstrap's replicates, interval width and seed.

    Returns
    -------
    dict with ``metrics`` (name -> value, low, high), ``per_grade``, ``confusion``,
    ``confusion_normalised`` and ``bootstrap`` (how the intervals were drawn).
    """
    k = len(grades)
    intervals = bootstrap_intervals(y_true, y_pred, k, groups, proba, n_boot, confidence, seed)
    counts = confusion_matrix(y_true, y_pred, k)
    return {
        "n_photos": int(counts.sum()),
        "grades": list(grades),
        "metrics": {name: interval.as_dict() for name, interval in intervals.items()},
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
    }
