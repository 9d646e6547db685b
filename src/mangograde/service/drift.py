"""The line's last photos against the run's own held-out photos: has the camera, the light
or the fruit changed? A window of the last ``size`` photos' familiarity scores, tested
after each photo (see :func:`~mangograde.evaluation.familiarity.drift_pvalue`)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..graders import Grader

ALARM = 0.01  # the window drifts while its p-value is below this


def check_window(size: int) -> int:
    if not isinstance(size, int) or size < 2:
        raise SettingsError(
            f"--drift-window must be at least 2 photos (50 is a good start), got {size!r}: a "
            "test of one photo cannot tell a changed camera from one odd fruit."
        )
    return size


class DriftWindow:
    """The last photos' per-model scores, and the window's p-value."""

    def __init__(self, predictor: Grader, size: int = 50) -> None:
        self.predictor = predictor
        self.size = check_window(size)
        self._scores: deque[np.ndarray] = deque(maxlen=self.size)
        self._lock = threading.Lock()
        self.p_value: float | None = None
        self.seen = 0  # photos tested since the service started

    def add(self, scores: np.ndarray) -> float | None:
        """Add one photo's scores (one per fold model); the window's p-value after it."""
        with self._lock:
            self._scores.append(np.asarray(scores, dtype=float))
            self.seen += 1
            if len(self._scores) >= 2:
                self.p_value = self.predictor.drift(np.stack(self._scores, axis=1))
            return self.p_value

    @property
    def drifting(self) -> bool:
        return self.p_value is not None and self.p_value < ALARM

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"window": self.size, "photos_in_window": len(self._scores),
                    "photos_seen": self.seen, "drift_p": self.p_value,
                    "drifting": self.drifting}  # fmt: skip
