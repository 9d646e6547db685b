"""What the classical families share: a PhotoClassifier (photo features, then a
classifier), and features computed once per run instead of once per fold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...basics.errors import SettingsError
from ..registry import (
    FoldData,
    ModelFamily,
    Settings,
    embed_photos,
    fit_on_photos,
    grade_photos,
)

PIXELS = {"kind": "pixels", "size": 128, "polar": False, "polar_half": False, "expand": "none"}


def photo_classifier(settings: Settings, make: Any, dtype: str = "float32") -> Any:
    """``make(**params, random_state=seed)`` behind the run's photo features."""
    from ..classical import PhotoClassifier, pixel_features

    try:
        classifier = make(**settings["params"], random_state=settings["seed"])
    except TypeError as exc:
        raise SettingsError(f"Invalid settings for --model {settings['model']}: {exc}") from None
    features = settings["features"]
    return PhotoClassifier(pixel_features(features, dtype), classifier, features["expand"])


def prepare_features(model: Any, images: np.ndarray) -> dict[str, Any] | None:
    """Every photo's features, once for all folds (None when training photos are expanded)."""
    vectors = model.feature_vectors(images)
    return None if vectors is None else {"vectors": vectors}


def fit_on_features(model: Any, fold: FoldData) -> None:
    """Fit a fold on the features ``prepare_features`` computed (and ``gram``'s block)."""
    if fold.shared is None:
        return fit_on_photos(model, fold)
    vectors, gram = fold.shared["vectors"], fold.shared.get("gram")
    block = None if gram is None else gram[np.ix_(fold.train, fold.train)]
    train = fold.train
    model.fit(
        fold.images[train],
        fold.labels[train],
        fold.train_groups,
        vectors=vectors[train],
        gram=block,
    )


def grade_features(model: Any, fold: FoldData) -> tuple[np.ndarray, np.ndarray]:
    if fold.shared is None:
        return grade_photos(model, fold)
    return model.grade_features(fold.shared["vectors"][fold.test])


def embed_features(model: Any, fold: FoldData) -> tuple[np.ndarray, np.ndarray] | None:
    """The features ``prepare_features`` computed: what the classifier reads."""
    if fold.shared is None:
        return embed_photos(model, fold)
    vectors = np.asarray(fold.shared["vectors"], dtype=np.float64)
    return vectors[fold.train], vectors[fold.test]


def photo_family(
    name: str,
    classifier: Callable[[], Callable[..., Any]],
    params: Callable[[], dict[str, Any]],
    features: dict[str, Any] | None = None,
    dtype: str = "float32",
    **options: Any,
) -> ModelFamily:
    """A family of :class:`PhotoClassifier` whose classifier is
    ``classifier()(**params, random_state=seed)`` (``classifier`` imports it when called)."""
    hooks = {
        "prepare": prepare_features,
        "fit_fold": fit_on_features,
        "grade_fold": grade_features,
        "embed_fold": embed_features,
        **options,
    }
    return ModelFamily(
        name=name,
        build=lambda settings: photo_classifier(settings, classifier(), dtype),
        params=params,
        features={**PIXELS, **(features or {})},
        **hooks,
    )
