"""What every grader does with its checks: the familiarity model and the not-a-fruit
check (a run's predictor and each kind of export share it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .familiarity import Familiarity
from .fruits import FruitGrades, grade_fruits
from .not_a_fruit import NO_CHECK, NotAFruit

NO_FAMILIARITY = (
    "This run has no familiarity model (it was trained before mangograde kept one, or its "
    "family gives no features): its photos are graded without the unfamiliar flag. Train it "
    "again to have photos unlike its training photos left to check by hand."
)


class FamiliarGrader:
    """What every grader does with its :class:`Familiarity` (None: it has none, or it was
    turned off with ``--familiar off``) and its not-a-fruit check (None: it has none)."""

    familiarity: Familiarity | None
    notices: list[str]
    not_a_fruit: NotAFruit | None = None

    def _set_not_a_fruit(self, check: NotAFruit | None) -> None:
        self.not_a_fruit = check
        if check is None:
            self.notices = [*self.notices, NO_CHECK]

    def foreign(self, images: np.ndarray) -> np.ndarray | None:
        """Which decoded photos are nothing like a mango of the training photos (None
        without the check); never graded, whatever ``--familiar`` says."""
        return None if self.not_a_fruit is None else self.not_a_fruit.flags(images)

    def _set_familiarity(self, familiarity: Familiarity | None) -> None:
        self.familiarity = familiarity
        found = NO_FAMILIARITY if familiarity is None else familiarity.notice()
        self.notices = [*self.notices, *([found] if found else [])]

    def without_familiarity(self) -> None:
        """Grade without the unfamiliar flag (``--familiar off``), saying nothing of it."""
        said = NO_FAMILIARITY if self.familiarity is None else self.familiarity.notice()
        self.notices = [n for n in self.notices if n != said]
        self.familiarity = None

    def unfamiliar(self, scores: np.ndarray | None) -> np.ndarray | None:
        """Which photos of these ``(n_models, n_photos)`` scores are unfamiliar."""
        if self.familiarity is None or scores is None:
            return None
        return self.familiarity.flags(scores)

    def drift(self, scores: np.ndarray | None) -> float | None:
        if self.familiarity is None or scores is None:
            return None
        return self.familiarity.drift(scores)

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.grade(images)[0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.grade(images)[1]

    def grade_fruits(
        self, images: np.ndarray, fruit_ids: Sequence[str | None]
    ) -> tuple[FruitGrades, np.ndarray, np.ndarray]:
        """Grade decoded photos as fruits (``fruit_ids[i]``: photo i's fruit; None or empty,
        a fruit of its own): each fruit's grades, then each photo's probabilities and
        grade codes."""
        return grade_fruits(self, images, fruit_ids)  # type: ignore[arg-type]
