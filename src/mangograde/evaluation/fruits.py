"""Grade the fruit, not the photo: which photos show one fruit, and how their
probabilities become the fruit's.

A line photographs each mango several times and sorts the fruit. ``mean`` averages the
photos' probabilities; ``log-mean`` averages their logarithms (a normalised geometric
mean: one photo sure of a blemish weighs more). A photo with no fruit id is a fruit of
its own, so grading without fruits is grading photos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..basics.errors import DatasetError, SettingsError

FRUIT_RULES = ("mean", "log-mean")
_EPS = 1e-12


def check_fruit_rule(rule: object) -> None:
    if rule not in FRUIT_RULES:
        raise SettingsError(
            f"Unknown fruit.rule {rule!r}: use mean (the mean of the photos' probabilities) "
            "or log-mean (the mean of their logarithms)."
        )


def fruit_rule(settings: Mapping[str, Any]) -> str:
    """A run's fruit rule (runs written before it existed: ``mean``)."""
    section = settings.get("fruit")
    return str(section.get("rule", "mean")) if isinstance(section, Mapping) else "mean"


@dataclass(frozen=True)
class Fruits:
    """Which fruit each photo shows: photo ``i`` is fruit ``names[of[i]]``."""

    names: tuple[str, ...]
    of: np.ndarray

    @classmethod
    def from_ids(
        cls, fruit_ids: Sequence[str | None], photo_ids: Sequence[str] | None = None
    ) -> Fruits:
        """Fruits in order of first appearance; a photo without an id (None or empty) is a
        fruit of its own, named after the photo (``photo_ids``) or ``photo-N``."""
        names: dict[str, int] = {}
        of = np.empty(len(fruit_ids), dtype=np.int64)
        for i, fruit in enumerate(fruit_ids):
            key = str(fruit).strip() if fruit is not None else ""
            if not key:
                key = str(photo_ids[i]) if photo_ids is not None else f"photo-{i + 1}"
            of[i] = names.setdefault(key, len(names))
        return cls(tuple(names), of)

    @classmethod
    def each_photo(cls, photo_ids: Sequence[str]) -> Fruits:
        return cls.from_ids([None] * len(photo_ids), photo_ids)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def counts(self) -> np.ndarray:
        """Photos of each fruit."""
        return np.bincount(self.of, minlength=len(self.names))

    def first_photo(self) -> np.ndarray:
        """The index of each fruit's first photo."""
        return np.unique(self.of, return_index=True)[1]

    def photos_of(self, fruit: int) -> np.ndarray:
        return np.flatnonzero(self.of == fruit)


def combine(proba: np.ndarray, fruits: Fruits, rule: str = "mean") -> np.ndarray:
    """``(n_fruits, n_grades)`` from ``(n_photos, n_grades)`` under ``rule``."""
    check_fruit_rule(rule)
    proba = np.asarray(proba, dtype=float)
    if len(proba) != len(fruits.of):
        raise ValueError(f"{len(proba)} photos' probabilities for {len(fruits.of)} photos")
    values = proba if rule == "mean" else np.log(np.clip(proba, _EPS, 1.0))
    sums = np.zeros((len(fruits), proba.shape[1]))
    np.add.at(sums, fruits.of, values)
    means = sums / np.maximum(fruits.counts, 1)[:, None]
    if rule == "mean":
        return means
    means -= means.max(axis=1, keepdims=True)
    scaled = np.exp(means)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fruit_labels(labels: Sequence[int] | np.ndarray, fruits: Fruits) -> tuple[np.ndarray, int]:
    """Each fruit's grade code from its photos' labels (the most frequent; a tie goes to
    the worse grade), and how many fruits' photos disagree."""
    labels = np.asarray(labels, dtype=int)
    k = int(labels.max()) + 1 if len(labels) else 1
    votes = np.zeros((len(fruits), k), dtype=int)
    np.add.at(votes, (fruits.of, labels), 1)
    worse_first = votes[:, ::-1]
    codes = k - 1 - worse_first.argmax(axis=1)
    mixed = int(((votes > 0).sum(axis=1) > 1).sum())
    return codes, mixed


def fruit_folds(folds: np.ndarray, fruits: Fruits) -> np.ndarray:
    """Each fruit's fold; refused when one fruit's photos lie in two folds (the split was
    not by fruit)."""
    folds = np.asarray(folds)
    first = folds[fruits.first_photo()]
    if np.any(folds != first[fruits.of]):
        raise DatasetError(
            "Some fruits have photos in two folds: the run was not split by fruit, so its "
            "fruit-level scores would not be held out. Train with --groups."
        )
    return first


@dataclass
class FruitGrades:
    """Fruits graded from their photos: fruit ``i`` is ``fruits.names[i]``. It is left to
    check by hand when its top probability is below the grader's abstain setting
    (``unsure``), when any of its photos is unfamiliar to the grader (``unfamiliar``), or
    when any is not a mango at all (``not-a-fruit``)."""

    fruits: Fruits
    proba: np.ndarray
    predicted: np.ndarray
    unsure: np.ndarray
    unfamiliar: np.ndarray | None = None
    not_a_fruit: np.ndarray | None = None

    @property
    def check(self) -> np.ndarray:
        found = self.unsure if self.unfamiliar is None else self.unsure | self.unfamiliar
        return found if self.not_a_fruit is None else found | self.not_a_fruit

    def reason(self, i: int) -> str:
        """Why fruit ``i`` is to check by hand ("" when it is not): not-a-fruit, then
        unfamiliar, then unsure."""
        if self.not_a_fruit is not None and self.not_a_fruit[i]:
            return "not-a-fruit"
        if self.unfamiliar is not None and self.unfamiliar[i]:
            return "unfamiliar"
        return "unsure" if self.unsure[i] else ""


class _Grader(Protocol):
    rule: Any

    def grade_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]: ...

    def unfamiliar(self, scores: Any) -> np.ndarray | None: ...

    def foreign(self, images: np.ndarray) -> np.ndarray | None: ...


def _any_photo(fruits: Fruits, flags: np.ndarray | None) -> np.ndarray | None:
    if flags is None:
        return None
    found = np.zeros(len(fruits), dtype=bool)
    np.logical_or.at(found, fruits.of, np.asarray(flags, dtype=bool))
    return found


def fruit_grades(
    rule: Any,
    proba: np.ndarray,
    fruits: Fruits,
    unfamiliar: np.ndarray | None = None,
    not_a_fruit: np.ndarray | None = None,
) -> FruitGrades:
    """Photos' graded probabilities -> their fruits' grades, by the grader's
    :class:`~mangograde.evaluation.decisions.GradingRule`; ``unfamiliar`` and
    ``not_a_fruit``: which photos the grader flagged so (a fruit is, when any of its
    photos is)."""
    from .confidence import to_check

    fruit_proba, codes = rule.grade_fruits(proba, fruits)
    unsure = to_check(fruit_proba, rule.abstain)
    return FruitGrades(fruits, fruit_proba, codes, unsure, _any_photo(fruits, unfamiliar),
                       _any_photo(fruits, not_a_fruit))  # fmt: skip


def grade_fruits(
    grader: _Grader, images: np.ndarray, fruit_ids: Sequence[str | None]
) -> tuple[FruitGrades, np.ndarray, np.ndarray]:
    """Grade decoded photos with any grader, then their fruits: the fruits' grades, the
    photos' probabilities and the photos' grade codes."""
    if len(fruit_ids) != len(images):
        raise SettingsError(f"{len(fruit_ids)} fruit ids for {len(images)} photos: give one each.")
    proba, codes, scores = grader.grade_and_score(images)
    fruits = Fruits.from_ids(fruit_ids)
    found = fruit_grades(grader.rule, proba, fruits, grader.unfamiliar(scores),
                         grader.foreign(images))  # fmt: skip
    return found, proba, codes
