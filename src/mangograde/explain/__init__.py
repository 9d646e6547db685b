"""Why a model gave a photo its grade: LIME for every model, Grad-CAM for CNNs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..basics.errors import SettingsError
from .grader import Grader

METHODS = ("lime", "gradcam")


@dataclass
class Explanation:
    """What a model saw and which regions drove the explained grade.

    ``image`` is the photo as the model sees it (uint8 ``(H, W, 3)``); ``heat`` is each
    pixel's weight for ``grade`` (LIME: its superpixel's weight; Grad-CAM: the class
    activation map, 0 to 1); ``mask`` marks the regions that support ``grade``.
    """

    method: str
    image: np.ndarray
    heat: np.ndarray
    mask: np.ndarray
    grade: str
    predicted: str
    proba: dict[str, float]
    segments: np.ndarray | None = None


def is_cnn(predictor: Grader) -> bool:
    """Every model (and blend member) has a network that Grad-CAM can look into."""
    members = [m for model in predictor.models for m in getattr(model, "estimators_", [model])]
    return all(hasattr(m, "module_") for m in members)


def explain(
    predictor: Grader,
    image: np.ndarray,
    method: str = "lime",
    grade: str | None = None,
    samples: int = 500,
    seed: int = 0,
    progress: bool | None = None,
) -> Explanation:
    """Explain one decoded photo (at the run's geometry) for ``grade`` (default: the
    predicted grade). ``samples`` is LIME's number of perturbed photos; ``method`` auto
    is Grad-CAM for CNNs (fast) and LIME for the others."""
    if method == "auto":
        method = "gradcam" if is_cnn(predictor) else "lime"
    if method not in METHODS:
        raise SettingsError(f"Unknown explanation method {method!r}. Valid: {', '.join(METHODS)}.")
    proba, codes = predictor.grade(image[None])
    predicted = int(codes[0])
    if grade is None:
        target = predicted
    elif grade in predictor.grades:
        target = predictor.grades.index(grade)
    else:
        raise SettingsError(
            f"Grade {grade!r} is not one of the run's grades ({', '.join(predictor.grades)})."
        )
    if method == "lime":
        from .lime import lime_regions

        view, heat, mask, segments = lime_regions(predictor, image, target, samples, seed, progress)
    else:
        from .gradcam import gradcam_regions

        view, heat, mask = gradcam_regions(predictor, image, target)
        segments = None
    return Explanation(
        method,
        view,
        heat,
        mask,
        predictor.grades[target],
        predictor.grades[predicted],
        {g: float(p) for g, p in zip(predictor.grades, proba[0], strict=True)},
        segments,
    )
