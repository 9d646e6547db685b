"""Blending: k models trained on k different fruit-grouped train/validation splits.

The study trained 5 CNNs on different splits and took a uniform vote (+0.4% on test).
``FoldEnsemble`` does that for any estimator; ``voting="mean"`` averages probabilities.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..basics.errors import SettingsError
from ..data.splits import kfold

VOTINGS = ("vote", "mean")


class FoldEnsemble(ClassifierMixin, BaseEstimator):
    """Train ``n_models`` clones of ``estimator``, model i without fold i of the photos.

    Fold i is model i's validation set (``eval_set``, when its ``fit`` takes one).
    Folds keep fruits (``groups``) whole. A ``checkpoint_dir`` parameter of the
    estimator gets one ``member-i`` folder per model.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
    n_models : int
        At least 2.
    voting : {"vote", "mean"}
        ``vote``: each model votes for its grade; ``predict_proba`` is the share of votes
        and ties go to the grade with the higher mean probability. ``mean``: averaged
        probabilities.
    seed : int
        Seed of the folds.
    """

    def __init__(
        self, estimator: Any, n_models: int = 5, voting: str = "vote", seed: int = 0
    ) -> None:
        self.estimator = estimator
        self.n_models = n_models
        self.voting = voting
        self.seed = seed

    def check_params(self) -> None:
        if self.voting not in VOTINGS:
            raise SettingsError(f"Unknown voting {self.voting!r}. Valid: {', '.join(VOTINGS)}.")
        if not isinstance(self.n_models, int) or self.n_models < 2:
            raise SettingsError(f"Blending needs at least 2 models, got {self.n_models!r}.")

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> FoldEnsemble:
        self.check_params()
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        splits = kfold(codes, self.n_models, groups, self.seed)
        takes = inspect.signature(self.estimator.fit).parameters
        base_dir = self.estimator.get_params().get("checkpoint_dir")
        self.estimators_ = []
        for number, (train, val) in enumerate(splits):
            member = clone(self.estimator)
            if base_dir is not None:
                member.set_params(checkpoint_dir=Path(base_dir) / f"member-{number}")
            kwargs: dict[str, Any] = {}
            if "groups" in takes and groups is not None:
                kwargs["groups"] = np.asarray(groups)[train]
            if "eval_set" in takes:
                kwargs["eval_set"] = (X[val], y[val])
            self.estimators_.append(member.fit(X[train], y[train], **kwargs))
        return self

    def adapt(self, X: np.ndarray, y: np.ndarray | None = None, **options: Any) -> FoldEnsemble:
        """A copy with every member adapted to photos ``X`` (each member's ``adapt``)."""
        check_is_fitted(self, "estimators_")
        adapted = copy.copy(self)
        adapted.estimators_ = [m.adapt(X, y, **options) for m in self.estimators_]
        return adapted

    def member_probabilities(self, X: np.ndarray) -> np.ndarray:
        """``(n_models, n_photos, n_grades)``, each model's columns in ``classes_`` order."""
        check_is_fitted(self, "estimators_")
        return model_probabilities(self.estimators_, X, self.classes_)

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Every member's features of photos ``X``, side by side (familiarity)."""
        return np.concatenate([m.embed(X) for m in self.estimators_], axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._joined(self.member_probabilities(X))

    def proba_and_embed(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_proba` and :meth:`embed` of photos ``X`` in one pass."""
        members, features = model_probabilities_and_features(self.estimators_, X, self.classes_)
        return self._joined(members), np.concatenate(features, axis=1)

    def _joined(self, members: np.ndarray) -> np.ndarray:
        if self.voting == "mean":
            return members.mean(axis=0)
        votes = np.eye(len(self.classes_))[members.argmax(axis=2)]  # (models, photos, grades)
        return votes.mean(axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        members = self.member_probabilities(X)
        mean = members.mean(axis=0)
        if self.voting == "mean":
            return self.classes_[mean.argmax(axis=1)]
        shares = np.eye(len(self.classes_))[members.argmax(axis=2)].mean(axis=0)
        # Mean probabilities only break ties between equal vote shares (all < 1 apart).
        return self.classes_[(shares * len(self.estimators_) + mean / 2).argmax(axis=1)]


def model_probabilities(models: Sequence[Any], X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(n_models, n_photos, n_classes)``: each model's probabilities with its columns
    placed at its ``classes_`` among the sorted ``classes`` (a class it never saw gets 0)."""
    return np.stack([in_columns(m.predict_proba(X), m.classes_, classes) for m in models])


def model_probabilities_and_features(
    models: Sequence[Any], X: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`model_probabilities` and each model's features of photos ``X``, one pass a
    model (:func:`probabilities_and_features`)."""
    pairs = [probabilities_and_features(m, X) for m in models]
    placed = zip(pairs, models, strict=True)
    members = np.stack([in_columns(p, m.classes_, classes) for (p, _), m in placed])
    return members, [f for _, f in pairs]


def probabilities_and_features(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model's ``predict_proba`` and ``embed`` of photos ``X`` (in one pass where the
    model can: ``proba_and_embed``), probabilities in the model's own ``classes_`` order."""
    both = getattr(model, "proba_and_embed", None)
    if callable(both):
        return both(X)
    return model.predict_proba(X), model.embed(X)


def in_columns(proba: np.ndarray, own: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Probabilities over a model's own sorted classes ``own``, placed among the sorted
    ``classes`` (0 for a class the model never saw)."""
    placed = np.zeros((len(proba), len(classes)))
    placed[:, np.searchsorted(classes, own)] = proba
    return placed
