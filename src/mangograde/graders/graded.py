"""``Graded``: a batch of photos as a grader graded them, the one result every command and
the service read (grades, checks with their reasons, familiarity, drift, fruits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluation.confidence import to_check
from ..evaluation.decisions import GradingRule
from ..evaluation.fruits import FruitGrades, Fruits, fruit_grades
from ..evaluation.not_a_fruit import REASON
from ..images.decode import BadImage

CHECK = "check"  # the label of a photo or fruit left to grade by hand


def shares(grades: Sequence[str], proba: np.ndarray) -> dict[str, float]:
    """One photo's (or fruit's) probabilities by grade, as answered and recorded."""
    return {g: round(float(p), 6) for g, p in zip(grades, proba, strict=True)}


def photo_reasons(
    proba: np.ndarray,
    abstain: float | None,
    unfamiliar: np.ndarray | None,
    not_a_fruit: np.ndarray | None = None,
) -> list[str]:
    """Why each photo is to check by hand: ``not-a-fruit`` (nothing like a mango of the
    training photos), else ``unfamiliar`` (unlike them), else ``unsure`` (its top
    probability below ``abstain``), else ""."""
    unsure = to_check(proba, abstain)
    none = np.zeros(len(unsure), bool)
    odd = none if unfamiliar is None else np.asarray(unfamiliar, bool)
    foreign = none if not_a_fruit is None else np.asarray(not_a_fruit, bool)
    return [REASON if f else "unfamiliar" if o else "unsure" if u else ""
            for f, o, u in zip(foreign, odd, unsure, strict=True)]  # fmt: skip


@dataclass
class Graded:
    """Photos graded by a grader: ``proba[i]`` is photo ``image_ids[i]`` (bad photos left
    out, listed in ``bad``). ``rule`` is the rule they were graded by (its ``abstain``
    may be the command's own); ``fruit_grades`` is set when fruit ids were given."""

    image_ids: list[str]
    proba: np.ndarray
    predicted: np.ndarray
    grades: tuple[str, ...]
    rule: GradingRule = field(default_factory=GradingRule)
    paths: list[Path] = field(default_factory=list)
    bad: list[BadImage] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None  # grade codes, when the photos were labelled
    fruit_ids: list[str] | None = None  # which fruit each photo shows ("": its own)
    scores: np.ndarray | None = None  # (n_models, n) familiarity scores, with familiarity
    unfamiliar: np.ndarray | None = None  # which photos the grader finds unfamiliar
    not_a_fruit: np.ndarray | None = None  # which photos are nothing like a mango
    drift_p: float | None = None  # the batch against the run's held-out photos
    fruit_grades: FruitGrades | None = None  # with fruit ids: each fruit's grade
    features: list[np.ndarray] | None = None  # grade_batch(embed=True): each fold model's

    @property
    def abstain(self) -> float | None:
        return self.rule.abstain

    @property
    def has_checks(self) -> bool:
        """Whether any photo could be left to check (an abstain setting or familiarity)."""
        flags = (self.unfamiliar, self.not_a_fruit)
        return self.rule.abstain is not None or any(f is not None for f in flags)

    @property
    def familiarity(self) -> np.ndarray | None:
        """Each photo's familiarity score (the mean over the fold models)."""
        return None if self.scores is None else self.scores.mean(axis=0)

    @property
    def reasons(self) -> list[str]:
        """Why each photo is to check by hand ("" where it is not)."""
        return photo_reasons(self.proba, self.rule.abstain, self.unfamiliar, self.not_a_fruit)

    @property
    def labels(self) -> list[str]:
        """Each photo's grade, or ``check`` (to grade by hand) where it has a reason."""
        return [CHECK if why else self.grades[c]
                for c, why in zip(self.predicted, self.reasons, strict=True)]  # fmt: skip

    @property
    def fruits(self) -> Fruits | None:
        if self.fruit_grades is not None:  # graded by fruit: the fruits it was graded as
            return self.fruit_grades.fruits
        return None if self.fruit_ids is None else Fruits.from_ids(self.fruit_ids, self.image_ids)

    def as_fruits(self) -> FruitGrades:
        """The fruits graded (each photo a fruit of its own when no fruit ids were given)."""
        if self.fruit_grades is not None:
            return self.fruit_grades
        fruits = Fruits.each_photo(self.image_ids)
        return fruit_grades(self.rule, self.proba, fruits, self.unfamiliar, self.not_a_fruit)

    def fruit_labels(self, fruits: FruitGrades | None = None) -> list[str]:
        """Each photo's label taken from its fruit's grade (``check`` where the fruit is)."""
        fruits = fruits or self.as_fruits()
        labels = fruit_grade_labels(fruits, self.grades)
        return [labels[f] for f in fruits.fruits.of]


def fruit_grade_labels(fruits: FruitGrades, grades: Sequence[str]) -> list[str]:
    """Each fruit's grade, or ``check`` where it is left to grade by hand."""
    return [CHECK if c else grades[p] for p, c in zip(fruits.predicted, fruits.check, strict=True)]
