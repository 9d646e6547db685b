"""``RunPredictor``: the one way to grade photos with a trained run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.decisions import GradingRule
from ..evaluation.familiarity import Familiarity, familiarity_from_arrays
from ..evaluation.fruits import fruit_rule
from ..evaluation.grader_checks import FamiliarGrader
from ..evaluation.not_a_fruit import NotAFruit, NotAFruitModel, split_arrays
from ..models.blend import model_probabilities, model_probabilities_and_features
from ..models.bundle import Bundle
from .folder import Run, geometry_from_record, open_run


class RunPredictor(FamiliarGrader):
    """Grades decoded photos with one or more bundles of a run (mean of their probabilities)."""

    def __init__(
        self,
        bundles: list[Bundle],
        temperature: float | None = None,
        fruit_temperature: float | None = None,
    ) -> None:
        self.bundles = bundles
        self.name = "run"  # the run folder's name (open_predictor sets it)
        self.grades = bundles[0].grades
        self.geometry = geometry_from_record(bundles[0].manifest["preprocessing"]["geometry"])
        self.notices = sorted({n for b in bundles for n in b.notices})
        settings = bundles[0].settings  # runs before 0.2 knew only the model's own rule
        self.rule = GradingRule(
            str(settings.get("decision", "argmax")),
            temperature,
            settings.get("abstain"),
            fruit_rule(settings),
            fruit_temperature,
        )
        stored, checks = zip(*(split_arrays(b.familiarity) for b in bundles), strict=True)
        self._set_familiarity(
            Familiarity(tuple(familiarity_from_arrays(a) for a in stored))
            if all(a is not None for a in stored)
            else None
        )
        self._set_not_a_fruit(_not_a_fruit(checks[0]))

    @property
    def family(self) -> str:
        return str(self.bundles[0].settings.get("model", "?"))

    @property
    def models(self) -> list[Any]:
        return [b.model for b in self.bundles]

    @property
    def model_sha256(self) -> str:
        """One SHA-256 for the bundles graded with: of their files' checksums, in order."""
        files = [b.manifest.get("files", {}) for b in self.bundles]
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()

    def model_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(n_models, n_photos, n_grades)``, columns in grade order."""
        return model_probabilities(self.models, images, np.arange(len(self.grades)))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.rule.calibrated(self.model_probabilities(images).mean(axis=0))

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and grade codes. One model grades by its own rule, as in training
        (a blend's vote, an SVM's decision); several fold models by their mean. A model
        whose rule is the most likely grade is not run twice."""
        return self._graded(images, self.model_probabilities(images))

    def grade_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """:meth:`grade`, and each fold model's familiarity scores of the photos
        ``(n_models, n_photos)`` (None without familiarity), from one pass of each model."""
        if self.familiarity is None:
            return (*self.grade(images), None)
        proba, codes, features = self.grade_and_embed(images)
        return proba, codes, self.familiarity.scores(features)

    def grade_and_embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """:meth:`grade`, and each fold model's features of the photos (one pass a model);
        AttributeError from a family that gives no features."""
        classes = np.arange(len(self.grades))
        members, features = model_probabilities_and_features(self.models, images, classes)
        return (*self._graded(images, members), features)

    def _graded(self, images: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self.rule.calibrated(members.mean(axis=0))
        model = self.models[0]
        own_rule = len(self.bundles) == 1 and not getattr(model, "predicts_most_likely", False)
        return proba, self.rule.grades(proba, (lambda: model.predict(images)) if own_rule else None)


def _not_a_fruit(arrays: dict[str, np.ndarray] | None) -> NotAFruit | None:
    """The run's not-a-fruit check (kept with each fold's familiarity arrays), graded with
    the installed Lite0 weights; None when the run has none or they are not installed."""
    if arrays is None:
        return None
    model = NotAFruitModel.from_arrays(arrays, "The run's familiarity.npz")
    from ..models.general_features import general_embedder

    found = general_embedder(model.weights_sha256)
    return None if found is None else NotAFruit(model, found[0])


def member_views(predictor: RunPredictor) -> list[tuple[str, RunPredictor]]:
    """An ensemble's members, each as a predictor of photos decoded at the ensemble's
    geometry (its fold models' members, each with its own temperature); empty for any
    other run."""
    models = predictor.models
    if not all(callable(getattr(m, "member_view", None)) for m in models):
        return []
    views = []
    for j, label in enumerate(models[0].labels):
        bundles = [replace(b, model=b.model.member_view(j), familiarity=None)
                   for b in predictor.bundles]  # fmt: skip
        view = RunPredictor(bundles)
        view.name = str(label)
        views.append((str(label), view))
    return views


def open_predictor(run: Run | str | Path, fold: int | None = None) -> RunPredictor:
    """The predictor of a run folder: the mean of its fold models, or fold ``fold``'s."""
    if not isinstance(run, Run):
        run = open_run(run)
    predictor = RunPredictor(
        run.bundles(fold), run.temperature(fold), run.temperature(fold, "fruit")
    )
    predictor.name = run.name
    return predictor
