"""How far a grader's probabilities can be trusted: calibration, and accuracy against
coverage when the least confident photos are left to check by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..basics.errors import SettingsError

BINS = 15


def calibration(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, bins: int = BINS
) -> dict[str, Any]:
    """Expected calibration error of the top probability (``bins`` equal-width bins) and
    the bins themselves, for a reliability diagram: a grader reading p = 0.9 should be
    right 9 times in 10."""
    true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        mean_confidence = float(confidence[inside].mean())
        accuracy = float(correct[inside].mean())
        ece += inside.mean() * abs(accuracy - mean_confidence)
        rows.append({"low": b / bins, "high": (b + 1) / bins, "n": int(inside.sum()),
                     "confidence": mean_confidence, "accuracy": accuracy})  # fmt: skip
    return {"ece": float(ece), "bins": rows}


def coverage(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    target: float = 0.99,
) -> dict[str, Any]:
    """Most confident first: the accuracy on the share of photos graded, for every share
    (a photo below the threshold is left to check by hand), the highest share that is at
    least ``target`` accurate and its threshold, and the accuracy at 90% coverage."""
    true, pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    confidence = np.asarray(proba, dtype=float).max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    right = np.cumsum(pred[order] == true[order])
    n = len(true)
    counts = np.arange(1, n + 1)
    accuracy = right / counts
    # A threshold can only fall between different confidences.
    ends = np.flatnonzero(np.append(np.diff(confidence[order]) != 0, True))
    good = [i for i in ends if accuracy[i] >= target]
    best = max(good) if good else None
    steps = sorted({min(n - 1, max(0, int(np.ceil(s * n)) - 1)) for s in np.linspace(0.05, 1, 20)})
    at_90 = min(n - 1, max(0, int(np.ceil(0.9 * n)) - 1)) if n else None
    return {
        "target": target,
        "curve": [{"coverage": float(counts[i] / n), "accuracy": float(accuracy[i]),
                   "threshold": float(confidence[order][i])} for i in steps],  # fmt: skip
        "reaches_target": None if best is None else {
            "coverage": float(counts[best] / n),
            "threshold": float(confidence[order][best]),
            "accuracy": float(accuracy[best]),
        },
        "accuracy_at_90": None if at_90 is None else float(accuracy[at_90]),
    }  # fmt: skip


def check_abstain(threshold: Any) -> None:
    """``abstain``: None, or the top probability (0 to 1) below which a photo is checked."""
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    if threshold is not None and not (number and 0 <= threshold <= 1):
        raise SettingsError(
            f"abstain must be a probability from 0 to 1 (e.g. 0.8), got {threshold!r}."
        )


def to_check(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    """Which photos ``abstain=threshold`` leaves to check by hand: those whose top
    probability is below it (none without a threshold)."""
    proba = np.asarray(proba, dtype=float)
    if threshold is None:
        return np.zeros(len(proba), dtype=bool)
    return proba.max(axis=-1) < threshold


def abstained(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """What ``abstain=threshold`` does to these photos: the share graded (the rest are
    left to check by hand) and the accuracy on those graded."""
    true, pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    graded = ~to_check(proba, threshold)
    return {
        "threshold": float(threshold),
        "coverage": float(graded.mean()) if len(graded) else 0.0,
        "n_check": int((~graded).sum()),
        "accuracy": float(np.mean(pred[graded] == true[graded])) if graded.any() else None,
    }
