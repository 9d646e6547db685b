"""Temperature scaling of a run's probabilities, fit only on photos of held-out fruits.

``p ** (1 / T)``, renormalised: the softmax of the logits divided by ``T``, which keeps
each photo's most likely grade and makes the probabilities honest (``T > 1`` softens an
overconfident model). Each fold's ``T`` is fit on the other folds' out-of-fold
probabilities, which came from models that never saw those photos' fruits, and none of
which is the fold's own photos; the run's ``T`` for new photos is fit on all of them.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
_LOW, _HIGH = np.log(0.05), np.log(20.0)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(np.asarray(proba, dtype=float), _EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def _nll(proba: np.ndarray, true: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(proba, temperature)
    return float(-np.log(np.clip(scaled[np.arange(len(true)), true], _EPS, 1.0)).mean())


def fit_temperature(proba: np.ndarray, true: np.ndarray, steps: int = 60) -> float:
    """The ``T`` (0.05 to 20) of least log loss, by golden-section search on ``log T``."""
    true = np.asarray(true, dtype=int)
    ratio = (np.sqrt(5) - 1) / 2
    low, high = _LOW, _HIGH
    for _ in range(steps):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _nll(proba, true, np.exp(a)) <= _nll(proba, true, np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def cross_fit(
    proba: np.ndarray, true: np.ndarray, folds: np.ndarray
) -> tuple[np.ndarray, dict[int, float], float]:
    """Each fold's photos calibrated with a ``T`` fit on the other folds' photos; each
    fold's ``T``; and the ``T`` of all photos (for grading new ones)."""
    calibrated = np.array(proba, dtype=float)
    per_fold = {}
    for fold in np.unique(folds):
        mine = folds == fold
        per_fold[int(fold)] = fit_temperature(proba[~mine], true[~mine])
        calibrated[mine] = apply_temperature(proba[mine], per_fold[int(fold)])
    return calibrated, per_fold, fit_temperature(proba, true)
