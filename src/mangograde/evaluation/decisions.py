"""Turning probabilities into a grade: the most likely one, or the one that costs least.

Grades are ordered, and calling an A a C costs more than a one-grade slip. ``min-cost``
picks the grade with the lowest expected cost under the cost matrix ``|i - j|`` (grades
apart): the median of the probability distribution over the ordered grades.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..basics.errors import SettingsError
from .fruits import Fruits, combine
from .temperature import apply_temperature

DECISIONS = ("argmax", "min-cost")


def check_decision(rule: str) -> None:
    if rule not in DECISIONS:
        raise SettingsError(
            f"Unknown decision {rule!r}: use argmax (the most likely grade) or min-cost (the "
            "grade with the least expected cost, grades apart)."
        )


def cost_matrix(k: int) -> np.ndarray:
    """``cost[true, predicted] = |true - predicted|``."""
    grades = np.arange(k)
    return np.abs(grades[:, None] - grades[None, :]).astype(float)


def decide(proba: np.ndarray, rule: str) -> np.ndarray:
    """Grade codes of ``(n_photos, n_grades)`` probabilities under ``rule``."""
    check_decision(rule)
    proba = np.asarray(proba, dtype=float)
    if rule == "argmax":
        return proba.argmax(axis=1)
    expected = proba @ cost_matrix(proba.shape[1])  # expected cost of each choice
    return expected.argmin(axis=1)


@dataclass(frozen=True)
class GradingRule:
    """What a grader does with its models' mean probabilities, as its run was trained:
    scale them by the run's temperature (calibration=temperature), grade them by its
    decision, and leave photos below ``abstain`` to check by hand. A fruit's photos
    become one fruit by ``fruit`` (``mean`` or ``log-mean``), scaled by the temperature
    fit on whole fruits, then graded and checked the same way."""

    decision: str = "argmax"
    temperature: float | None = None
    abstain: float | None = None
    fruit: str = "mean"
    fruit_temperature: float | None = None

    def calibrated(self, proba: np.ndarray) -> np.ndarray:
        return proba if self.temperature is None else apply_temperature(proba, self.temperature)

    def grades(self, proba: np.ndarray, own: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        """Grade codes; under argmax, the model's own rule (``own``) where it has one."""
        if self.decision != "argmax":
            return decide(proba, self.decision)
        return proba.argmax(axis=1) if own is None else np.asarray(own(), dtype=int)

    def grade_fruits(self, proba: np.ndarray, fruits: Fruits) -> tuple[np.ndarray, np.ndarray]:
        """Each fruit's probabilities and grade code, from its photos' graded
        probabilities (``proba``, as :meth:`calibrated` left them)."""
        combined = combine(proba, fruits, self.fruit)
        if self.fruit_temperature is not None:
            combined = apply_temperature(combined, self.fruit_temperature)
        return combined, self.grades(combined)
