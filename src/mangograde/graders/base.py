"""The ``Grader`` contract: what a run folder's predictor and an export both are.

``predict``, ``evaluate``, ``serve``, ``suggest`` and ``data familiar`` hold a grader
through this Protocol only, so none of them can tell which kind it got; the conformance
test (``tests/test_grader_contract.py``) checks that both kinds grade the same photos
alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..evaluation.decisions import GradingRule
from ..evaluation.familiarity import Familiarity
from ..evaluation.fruits import FruitGrades
from ..images.geometry import Geometry


@runtime_checkable
class Grader(Protocol):
    """A trained model that grades decoded photos.

    Attributes
    ----------
    name : the run it grades with (a run folder's name; an export's source run)
    grades : the grade names, best first
    geometry : how photos are decoded for it (size, crop)
    rule : temperature, decision, abstain and the fruit rule (:class:`GradingRule`)
    familiarity : the familiarity model, None when it has none or it was turned off
    notices : what it says about itself before grading (e.g. no familiarity model)
    """

    name: str
    grades: tuple[str, ...]
    geometry: Geometry
    rule: GradingRule
    familiarity: Familiarity | None
    notices: list[str]

    @property
    def family(self) -> str:
        """The model family it was trained as (``colour``, ``cnn``, ...)."""
        ...

    @property
    def model_sha256(self) -> str:
        """One checksum of the model files it grades with, as records keep it."""
        ...

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities ``(n, n_grades)`` and grade codes ``(n,)``."""
        ...

    def grade_and_score(
        self, images: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`grade` and familiarity scores ``(n_models, n)`` (None without
        familiarity), from one pass of the models."""
        ...

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...

    def foreign(self, images: np.ndarray) -> np.ndarray | None:
        """Which decoded photos are not a mango to grade (None without the check)."""
        ...

    def unfamiliar(self, scores: np.ndarray | None) -> np.ndarray | None:
        """Which photos of these scores are unlike the training photos."""
        ...

    def drift(self, scores: np.ndarray | None) -> float | None:
        """The p-value that photos with these scores are like the run's held-out ones."""
        ...

    def without_familiarity(self) -> None:
        """Grade without the unfamiliar flag from now on (``--familiar off``)."""
        ...

    def grade_fruits(
        self, images: np.ndarray, fruit_ids: Sequence[str | None]
    ) -> tuple[FruitGrades, np.ndarray, np.ndarray]:
        """The fruits' grades, then the photos' probabilities and grade codes."""
        ...
