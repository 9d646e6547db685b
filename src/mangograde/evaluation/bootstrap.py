"""Bootstrap confidence intervals that resample whole fruits when groups are known.

Photos of one fruit are not independent: resampling them one by one would give intervals
that are too narrow. Each replicate draws as many units (fruits, or photos without groups)
as there are, with replacement, and adds up their confusion matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..basics.errors import SettingsError
from .metrics import SCALAR_METRICS, _codes, _photo_log_losses, confusion_matrix


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready: an undefined value (NaN) becomes None."""
        return {k: None if v != v else v for k, v in vars(self).items()}


def _units(groups: Sequence[str] | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if len(groups) != n:
        raise SettingsError(f"groups has {len(groups)} entries for {n} photos: give one each.")
    _, unit = np.unique(groups, return_inverse=True)
    return unit.ravel(), int(unit.max(initial=-1)) + 1


def count_units(groups: Sequence[str] | np.ndarray | None, n: int) -> int:
    """How many units the bootstrap draws: fruits, or photos without groups."""
    return _units(groups, n)[1]


def bootstrap_intervals(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    n_grades: int,
    groups: Sequence[str] | np.ndarray | None = None,
    proba: np.ndarray | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Each metric of :data:`SCALAR_METRICS` (and ``log_loss`` with ``proba``) with its
    percentile interval. The same ``seed`` gives the same intervals.

    Examples
    --------
    >>> ci = bootstrap_intervals([0, 1, 2, 2], [0, 1, 2, 1], 3, n_boot=200)
    >>> ci["accuracy"].value
    0.75
    """
    if not 0 < confidence < 1:
        raise SettingsError(f"confidence must lie between 0 and 1; got {confidence}.")
    if n_boot < 1:
        raise SettingsError(f"n_boot must be at least 1; got {n_boot}.")
    true, pred = _codes(y_true, "y_true"), _codes(y_pred, "y_pred")
    whole = confusion_matrix(true, pred, n_grades)
    unit, n_units = _units(groups, len(true))
    # (units, k, k): each unit's own confusion matrix
    per_unit = np.zeros((n_units, n_grades * n_grades))
    np.add.at(per_unit, (unit, true * n_grades + pred), 1)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_units, np.full(n_units, 1 / max(1, n_units)), size=n_boot)
    replicates = (draws @ per_unit).reshape(n_boot, n_grades, n_grades)
    tail = 100 * (1 - confidence) / 2
    found: dict[str, Interval] = {}

    def add(name: str, value: float, samples: np.ndarray) -> None:
        low = high = np.nan
        if np.isfinite(samples).any():
            low, high = np.nanpercentile(samples, [tail, 100 - tail])
        found[name] = Interval(float(value), float(low), float(high))

    for name, metric in SCALAR_METRICS.items():
        add(name, metric(whole), metric(replicates))
    if proba is not None:
        losses = np.zeros(n_units)
        np.add.at(losses, unit, _photo_log_losses(true, proba))
        sampled = (draws @ losses) / np.maximum(1, replicates.sum(axis=(1, 2)))
        add("log_loss", losses.sum() / max(1, len(true)), sampled)
    return found
