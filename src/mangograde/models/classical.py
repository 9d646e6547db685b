"""Photo-level classical models: features, flip/rotate expansion, then a classifier."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..basics.errors import SettingsError
from ..features.expand import expand_features, expansion_ops, pixel_permutations
from ..features.pixels import PixelVectors, check_images
from ..features.polar import PolarWarp
from .forest import GroupForestClassifier
from .svm import PCASVC, GramPCA
from .validation import is_int, positive, require


def _fit_takes(estimator: BaseEstimator, name: str) -> bool:
    return name in inspect.signature(estimator.fit).parameters


class PhotoClassifier(ClassifierMixin, BaseEstimator):
    """Grade ``(n, H, W, 3)`` uint8 photos: ``features`` -> ``classifier``.

    Training photos are first expanded by flips / rotations (``expand``); each copy keeps
    its photo's group (or, without groups, its photo), so a classifier that takes
    ``groups`` (the forest) never treats siblings as independent.

    Parameters
    ----------
    features : transformer
        Photos in, 2-D feature matrix out (e.g. :class:`PixelVectors`).
    classifier : classifier
        Any scikit-learn classifier with ``predict_proba``.
    expand : {"none", "flip", "rotate", "flip-rotate"}
    """

    def __init__(
        self,
        features: TransformerMixin | None = None,
        classifier: ClassifierMixin | None = None,
        expand: str = "none",
    ) -> None:
        self.features = features
        self.classifier = classifier
        self.expand = expand

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        *,
        vectors: np.ndarray | None = None,
        gram: np.ndarray | None = None,
    ) -> PhotoClassifier:
        """Fit on photos ``X``; ``vectors`` may hold their features, already computed by
        :meth:`feature_vectors` (cross-validation then transforms each photo once), and
        ``gram`` their Gram matrix, for a classifier that takes one (PCA + SVC)."""
        images = check_images(X, "training photos")
        y = np.asarray(y)
        expansion_ops(self.expand)
        self.features_ = clone(self.features if self.features is not None else PixelVectors())
        self.features_.fit(images[:1], y[:1])
        self.classifier_ = clone(self.classifier or PCASVC())
        if vectors is not None and self.expand != "none":
            raise ValueError("Precomputed vectors cannot be expanded; pass photos only.")
        extra: dict[str, Any] = {}
        if vectors is not None:
            source = np.arange(len(images))
        elif self._permutes_pixels():
            # The forest sees flipped / rotated copies as pixel permutations: none is stored.
            vectors, source = self.features_.transform(images), np.arange(len(images))
            shape = self.features_.image_shape_
            extra["feature_permutations"] = pixel_permutations(shape, self.expand)
        else:
            vectors, source = expand_features(images, self.expand, self.features_.transform)
        if gram is not None and _fit_takes(self.classifier_, "gram"):
            extra["gram"] = gram
        if _fit_takes(self.classifier_, "groups"):
            owners = np.asarray(groups) if groups is not None else np.arange(len(images))
            extra["groups"] = owners[source]
        self.classifier_.fit(vectors, y[source], **extra)
        self.classes_ = self.classifier_.classes_
        return self

    def _permutes_pixels(self) -> bool:
        accepts = _fit_takes(self.classifier_, "feature_permutations")
        return self.expand != "none" and accepts and isinstance(self.features_, PixelVectors)

    def feature_vectors(self, X: np.ndarray) -> np.ndarray | None:
        """Features of photos ``X`` for :meth:`fit`'s ``vectors``; None when this model
        expands its training photos (features must then be computed per copy)."""
        if self.expand != "none":
            return None
        return features_of(self.features if self.features is not None else PixelVectors(), X)

    def transform_photos(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.features_.transform(check_images(X, "photos"))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.classifier_.predict_proba(self.transform_photos(X))

    def embed(self, X: np.ndarray) -> np.ndarray:
        """``(n, d)`` features of photos ``X`` (the feature vectors the classifier reads),
        for the familiarity model."""
        return np.asarray(self.transform_photos(X), dtype=np.float64)

    def proba_and_embed(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_proba` and :meth:`embed` of photos ``X``, the features made once."""
        vectors = self.transform_photos(X)
        return self.classifier_.predict_proba(vectors), np.asarray(vectors, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classifier_.predict(self.transform_photos(X))

    def grade_features(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and grades of photos whose :meth:`feature_vectors` are given."""
        check_is_fitted(self)
        return self.classifier_.predict_proba(vectors), self.classifier_.predict(vectors)


class ReducedForest(ClassifierMixin, BaseEstimator):
    """A :class:`GroupForestClassifier` on all features, on PCA components, or on the
    features a first forest rated above ``selection_scaling`` x the median importance.

    Parameters
    ----------
    forest : GroupForestClassifier
    selection_scaling : float or None
        SelectFromModel threshold ``scaling * median`` (study: 1.0-2.0).
    n_components : int or None
        PCA components before the forest (instead of selection).
    """

    def __init__(
        self,
        forest: GroupForestClassifier | None = None,
        selection_scaling: float | None = None,
        n_components: int | None = None,
    ) -> None:
        self.forest = forest
        self.selection_scaling = selection_scaling
        self.n_components = n_components

    def check_params(self) -> None:
        require(
            "params.selection_scaling",
            self.selection_scaling,
            lambda v: v is None or positive(v),
            "a number above 0 (or null)",
        )
        require(
            "params.n_components",
            self.n_components,
            lambda v: v is None or is_int(v, 1),
            "1 or more (or null)",
        )
        if self.selection_scaling is not None and self.n_components is not None:
            raise SettingsError("Use either selection_scaling or n_components, not both.")

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> ReducedForest:
        forest = self.forest if self.forest is not None else GroupForestClassifier()
        if self.selection_scaling is not None and self.n_components is not None:
            raise SettingsError("Use either selection_scaling or n_components, not both.")
        if self.n_components is not None:
            self.reducer_ = GramPCA(self.n_components, random_state=forest.random_state).fit(X)
        elif self.selection_scaling is not None:
            from sklearn.feature_selection import SelectFromModel  # slow import, rarely needed

            first = clone(forest).set_params(oob_score=False).fit(X, y, groups)
            threshold = f"{float(self.selection_scaling)}*median"
            self.reducer_ = SelectFromModel(first, threshold=threshold, prefit=True)
        else:
            self.reducer_ = None
        reduced = self.reducer_.transform(X) if self.reducer_ is not None else X
        self.n_features_used_ = reduced.shape[1]
        self.forest_ = clone(forest).fit(reduced, y, groups)
        self.classes_ = self.forest_.classes_
        return self

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.reducer_.transform(X) if self.reducer_ is not None else X

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.forest_.predict_proba(self._reduce(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.forest_.predict(self._reduce(X))


def features_of(features: TransformerMixin, photos: np.ndarray) -> np.ndarray:
    """Every photo's features (the transformers here learn nothing from the photos)."""
    photos = check_images(photos, "photos")
    return clone(features).fit(photos[:1]).transform(photos)


def pixel_features(settings: dict[str, Any], dtype: str = "float32") -> TransformerMixin:
    """The ``features`` section as a transformer (photos arrive at ``size`` x ``size``)."""
    kind = settings["kind"]
    if kind == "pixels":
        if settings["polar"]:
            warp = PolarWarp(settings["size"], half=settings["polar_half"])
            return Pipeline([("polar", warp), ("pixels", PixelVectors(dtype=dtype))])
        return PixelVectors(size=settings["size"], dtype=dtype)
    if kind == "colour-texture":
        from ..features.colour import ColourTexture

        return ColourTexture()  # measures at 128 px whatever size the photos were decoded at
    raise SettingsError(f"Unknown features.kind {kind!r}. Valid kinds: pixels, colour-texture.")


def colour_vote(
    C: float = 0.1, n_estimators: int = 500, n_jobs: int | None = -1, random_state: int = 0
) -> ClassifierMixin:
    """Soft vote of a scaled logistic regression and a forest, for colour-texture features
    (91.5% fruit-grouped 5-fold accuracy on mango-grading, benchmarks/RESULTS.md).

    The forest is :class:`GroupForestClassifier`: as accurate here as scikit-learn's extra
    trees, and its bundle is 3 MB of arrays instead of 35 MB of tree objects."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
    trees = GroupForestClassifier(n_estimators, n_jobs=n_jobs, random_state=random_state)
    return VotingClassifier([("logistic", logistic), ("trees", trees)], voting="soft")
