"""PCA + RBF-SVM on pixel vectors, raw or polar-warped (the study's second family)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import register_model, signature_defaults
from ._photo import photo_family, prepare_features


def _svm() -> Any:
    from ..svm import PCASVC

    return PCASVC


def _prepare(model: Any, images: np.ndarray) -> dict[str, Any] | None:
    """Features, and for few wide photos every photo's Gram matrix, once for all folds.

    Each fold's PCA then needs only its block. Rows are centred on the mean of all photos
    first, for precision only: the fold's PCA re-centres on its own photos, so nothing
    of the held-out photos reaches it.
    """
    shared = prepare_features(model, images)
    if shared is None:
        return None
    vectors = shared["vectors"]
    n, d = vectors.shape
    if model.classifier.solver != "randomized" and n <= min(d, 4000):
        centred = vectors - vectors.mean(axis=0)
        shared["gram"] = centred @ centred.T
    return shared


register_model(
    photo_family(
        "svm",
        _svm,
        lambda: signature_defaults(_svm(), exclude=("random_state",)),
        sections={"search": {"C": [1.0], "gamma": ["scale"], "n_components": [200]}},
        prepare=_prepare,
        default_preset="svm-study",
        presets={
            "svm-study": {
                "description": "The study's best SVM: the 192 x 192 photo warped to polar "
                "coordinates about its centre, PCA 200 without whitening, RBF kernel, C = 1.5, "
                "gamma = scale (keeping only the fruit's half, --set polar_half=true, scored "
                "lower in the study).",
                "features": {"size": 192, "polar": True, "polar_half": False},
                "params": {"n_components": 200, "whiten": False, "kernel": "rbf", "C": 1.5},
                "search": {
                    "C": [1.0, 1.5, 2.0],
                    "gamma": [1e-6, 1e-5, 1e-4, 1e-3],
                    "n_components": [50, 100, 200, 500],
                },
            },
            "svm-raw": {
                "description": "PCA 200 + RBF SVM on raw 192 x 192 RGB pixels (the plain recipe).",
                "features": {"size": 192},
                "params": {"n_components": 200, "C": 1.5},
            },
        },
    )
)
