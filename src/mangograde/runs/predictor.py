"""``RunPredictor``: the one way to grade photos with a trained run."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.decisions import GradingRule
from ..evaluation.familiarity import FamiliarityModel, drift_pvalue
from ..evaluation.fruits import FruitGrades, fruit_rule, grade_fruits
from ..models.blend import model_probabilities
from ..models.bundle import Bundle
from .folder import Run, geometry_from_record, open_run


class RunPredictor:
    """Grades decoded photos with one or more bundles of a run (mean of their probabilities)."""

    def __init__(
        self,
        bundles: list[Bundle],
        temperature: float | None = None,
        fruit_temperature: float | None = None,
    ) -> None:
        self.bundles = bundles
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

    @property
    def models(self) -> list[Any]:
        return [b.model for b in self.bundles]

    def model_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(n_models, n_photos, n_grades)``, columns in grade order."""
        return model_probabilities(self.models, images, np.arange(len(self.grades)))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.rule.calibrated(self.model_probabilities(images).mean(axis=0))

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and grade codes. One model grades by its own rule, as in training
        (a blend's vote, an SVM's decision); several fold models by their mean. A model
        whose rule is the most likely grade is not run twice."""
        proba = self.predict_proba(images)
        model = self.models[0]
        own_rule = len(self.bundles) == 1 and not getattr(model, "predicts_most_likely", False)
        return proba, self.rule.grades(proba, (lambda: model.predict(images)) if own_rule else None)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.grade(images)[1]

    @property
    def familiar(self) -> bool:
        """Whether every model of this grader has a familiarity model (runs trained
        before familiarity existed, and families without features, have none)."""
        return all(b.familiarity is not None for b in self.bundles)

    @cached_property
    def familiarity_models(self) -> list[FamiliarityModel]:
        return [FamiliarityModel.from_arrays(b.familiarity) for b in self.bundles if b.familiarity]

    def familiarity_scores(self, images: np.ndarray) -> np.ndarray | None:
        """``(n_models, n_photos)``: each fold model's distance of each photo from its
        training photos (``inf`` for broken features); None without familiarity models."""
        if not self.familiar:
            return None
        pairs = zip(self.familiarity_models, self.bundles, strict=True)
        return np.stack([f.score(b.model.embed(images)) for f, b in pairs])

    def familiarity(self, images: np.ndarray) -> np.ndarray | None:
        """Each photo's familiarity score, the mean over the fold models (see
        :meth:`familiarity_scores`); above :attr:`familiar_threshold` it is unfamiliar."""
        scores = self.familiarity_scores(images)
        return None if scores is None else scores.mean(axis=0)

    def drift(self, scores: np.ndarray) -> float | None:
        """The p-value that photos of these ``familiarity_scores`` are like the run's
        held-out photos (see :func:`~mangograde.evaluation.familiarity.drift_pvalue`)."""
        return drift_pvalue(list(scores), [f.reference for f in self.familiarity_models])

    @property
    def familiar_threshold(self) -> float | None:
        if not self.familiar:
            return None
        return self.familiarity_models[0].threshold

    def grade_fruits(
        self, images: np.ndarray, fruit_ids: Sequence[str | None]
    ) -> tuple[FruitGrades, np.ndarray, np.ndarray]:
        """Grade decoded photos as fruits (``fruit_ids[i]``: photo i's fruit; None or empty,
        a fruit of its own): each fruit's grades, then each photo's probabilities and
        grade codes."""
        return grade_fruits(self, images, fruit_ids)


def open_predictor(run: Run | str | Path, fold: int | None = None) -> RunPredictor:
    """The predictor of a run folder: the mean of its fold models, or fold ``fold``'s."""
    if not isinstance(run, Run):
        run = open_run(run)
    return RunPredictor(run.bundles(fold), run.temperature(fold), run.temperature(fold, "fruit"))
