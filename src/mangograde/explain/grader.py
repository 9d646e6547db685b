"""What an explanation needs of a run's predictor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Grader(Protocol):
    """What an explanation needs of a run's predictor (``runs.RunPredictor`` is one)."""

    grades: tuple[str, ...]

    @property
    def models(self) -> Sequence[Any]: ...

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
