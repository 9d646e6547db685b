"""An ensemble of runs: one fold's models of several runs, graded as their weighted mean.

Each member is the same fold's model of a run trained on the same photos, folds and
grades (``mangograde ensemble`` checks that), kept with the temperature its run calibrated
that fold with, so the fold's held-out photos get exactly the probabilities the ensemble's
``predictions.csv`` states. Photos are decoded once at the largest member's size; each
member sees them at its own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..basics.errors import SettingsError
from ..features.pixels import resize_images
from .blend import in_columns, model_probabilities, probabilities_and_features


def tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities scaled by a temperature, as a run's calibration scales them
    (``evaluation.temperature.apply_temperature``; models sit beside evaluation, so the
    four lines are here too, and a test holds them equal)."""
    logits = np.log(np.clip(np.asarray(proba, dtype=float), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


class RunMean(ClassifierMixin, BaseEstimator):
    """The weighted mean of member models' (temperature-scaled) probabilities.

    Parameters
    ----------
    labels : sequence of str
        The members' names (their runs' names).
    weights : sequence of float
        Each member's weight (non-negative, summing to 1).
    sizes : sequence of int
        The square size each member's photos are decoded at.
    temperatures : sequence of float or None
        The temperature each member's run calibrated this fold with (None: none).

    Attributes
    ----------
    members_ : list of fitted estimators, in the order of ``labels``.
    classes_ : the grade codes.
    """

    predicts_most_likely = True  # predict is the argmax of predict_proba (graders skip it)

    def __init__(
        self,
        labels: Sequence[str] = (),
        weights: Sequence[float] = (),
        sizes: Sequence[int] = (),
        temperatures: Sequence[float | None] = (),
    ) -> None:
        self.labels = labels
        self.weights = weights
        self.sizes = sizes
        self.temperatures = temperatures

    def check_params(self) -> None:
        n = len(self.labels)
        if n < 2:
            raise SettingsError(f"An ensemble needs 2 or more members, got {n}.")
        if not (len(self.weights) == len(self.sizes) == len(self.temperatures) == n):
            raise SettingsError("An ensemble needs a weight, size and temperature a member.")
        weights = np.asarray(self.weights, dtype=float)
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0)):
            raise SettingsError(f"An ensemble's weights must be 0 or more, got {self.weights}.")
        if abs(weights.sum() - 1) > 1e-6:
            raise SettingsError(f"An ensemble's weights must sum to 1, got {self.weights}.")

    def fit(self, X: Any, y: Any, groups: Any = None) -> RunMean:
        raise SettingsError(
            "An ensemble is made from trained runs, not trained on photos: mangograde "
            "ensemble RUN RUN --out DIR, or mangograde train DATA --preset best."
        )

    def joined(self, members: Sequence[Any], classes: np.ndarray) -> RunMean:
        """This ensemble over the fitted ``members`` (one a label)."""
        self.check_params()
        self.members_ = list(members)
        self.classes_ = np.asarray(classes)
        return self

    def _views(self, X: np.ndarray) -> list[np.ndarray]:
        return [resize_images(X, int(size)) for size in self.sizes]

    def _scaled(self, proba: np.ndarray, member: int) -> np.ndarray:
        temperature = self.temperatures[member]
        return proba if temperature is None else tempered(proba, float(temperature))

    def member_probabilities(self, X: np.ndarray) -> np.ndarray:
        """``(n_photos, n_members, n_grades)``: each member's calibrated probabilities."""
        check_is_fitted(self, "members_")
        views = self._views(X)
        return np.stack(
            [self._scaled(model_probabilities([m], view, self.classes_)[0], j)
             for j, (m, view) in enumerate(zip(self.members_, views, strict=True))],
            axis=1,
        )  # fmt: skip

    def _mean(self, members: np.ndarray) -> np.ndarray:
        return np.einsum("nmg,m->ng", members, np.asarray(self.weights, dtype=float))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._mean(self.member_probabilities(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def proba_and_embed(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities and every member's features side by side (the familiarity
        model's input: each member's own model reads its own columns)."""
        check_is_fitted(self, "members_")
        probabilities, features = [], []
        for j, (model, view) in enumerate(zip(self.members_, self._views(X), strict=True)):
            proba, found = probabilities_and_features(model, view)
            probabilities.append(self._scaled(in_columns(proba, model.classes_, self.classes_), j))
            features.append(np.asarray(found, dtype=np.float64).reshape(len(X), -1))
        return self._mean(np.stack(probabilities, axis=1)), np.concatenate(features, axis=1)

    def embed(self, X: np.ndarray) -> np.ndarray:
        return self.proba_and_embed(X)[1]

    def member_view(self, member: int) -> MemberOf:
        """Member ``member`` alone, grading photos decoded at the ensemble's size (what
        ``explain`` shows as that member's view)."""
        check_is_fitted(self, "members_")
        return MemberOf(self, member)


class MemberOf:
    """One member of a fitted :class:`RunMean`, graded as the ensemble grades it (its own
    size and temperature); never saved."""

    predicts_most_likely = True

    def __init__(self, ensemble: RunMean, member: int) -> None:
        self.ensemble = ensemble
        self.member = member
        self.classes_ = ensemble.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        model = self.ensemble.members_[self.member]
        view = resize_images(X, int(self.ensemble.sizes[self.member]))
        return self.ensemble._scaled(model_probabilities([model], view, self.classes_)[0],
                                     self.member)  # fmt: skip

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
