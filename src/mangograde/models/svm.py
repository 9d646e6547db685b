"""PCA then a support-vector classifier, with an exact PCA that is fast for few wide photos."""

from __future__ import annotations

import copy
import warnings

import numpy as np
from scipy.linalg import eigh
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .validation import is_int, positive, require

# Eigenvalues below this many machine epsilons of the largest are rounding noise (the
# photos of mango-grading keep all 479 of theirs: the smallest real one is 1.6e-4 of the
# largest, the noise 1.5e-7).
RELATIVE_TOLERANCE = 100


class GramPCA(TransformerMixin, BaseEstimator):
    """PCA that, for fewer photos than pixels, decomposes the n x n Gram matrix.

    The study's vectors have 55,296-110,592 values and a fold holds about 500 photos:
    ``X X^T`` is then exact and several times cheaper than a randomized SVD of ``X``.
    With more rows than ``gram_limit`` it falls back to scikit-learn's randomized PCA.

    Parameters
    ----------
    n_components : int
        Components kept; more than the data allows (rows or features) is reduced, with a
        warning, and ``n_components_`` says how many were kept.
    whiten : bool
        Scale components to unit variance.
    solver : {"auto", "gram", "randomized"}
        "auto" uses the Gram matrix for fewer than ``gram_limit`` rows that are fewer than
        the features, and scikit-learn's randomized SVD otherwise.
    gram_limit : int
        Largest number of rows "auto" decomposes through the Gram matrix.
    random_state : int or None
        Used by the randomized solver only.
    """

    def __init__(
        self,
        n_components: int = 200,
        whiten: bool = False,
        solver: str = "auto",
        gram_limit: int = 4000,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.solver = solver
        self.gram_limit = gram_limit
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None, gram: np.ndarray | None = None) -> GramPCA:
        """Fit on ``X``. ``gram`` may hold ``(X - c) @ (X - c).T`` for any constant row
        ``c`` (cross-validation computes it once for all photos and passes each fold's
        block); centring removes ``c``, so the result is that of ``X`` alone."""
        self._fit(X, gram)
        return self

    def fit_transform(
        self, X: np.ndarray, y: object = None, gram: np.ndarray | None = None
    ) -> np.ndarray:
        """Fit, and return the training rows' components (free from the Gram route)."""
        projected = self._fit(X, gram)
        if projected is None:
            return self.transform(X)
        if self.whiten:
            projected /= np.sqrt(self.explained_variance_).astype(projected.dtype)
        return projected

    def _fit(self, X: np.ndarray, gram: np.ndarray | None = None) -> np.ndarray | None:
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_min_samples=2)
        n, d = X.shape
        limit = min(n - 1, d) if n <= d else min(n, d)
        k = int(self.n_components)
        if k < 1:
            raise ValueError(f"n_components must be at least 1, got {self.n_components}.")
        if k > limit:
            warnings.warn(
                f"PCA keeps {limit} components, not the {k} asked (n_components): {n} "
                f"training photos of {d} values each allow no more.",
                stacklevel=2,
            )
            k = limit
        self.n_components_ = k
        if self.solver not in ("auto", "gram", "randomized"):
            raise ValueError(f"solver must be auto, gram or randomized, got {self.solver!r}.")
        use_gram = self.solver == "gram" or (self.solver == "auto" and n <= min(d, self.gram_limit))
        if not use_gram:
            pca = PCA(k, whiten=False, svd_solver="randomized", random_state=self.random_state)
            pca.fit(X)
            self.mean_ = pca.mean_.astype(X.dtype)
            self.components_ = pca.components_.astype(X.dtype)
            self.explained_variance_ = pca.explained_variance_
            return None
        self.mean_ = X.mean(axis=0)
        if gram is None:
            centred = X - self.mean_
            gram = centred @ centred.T
        elif np.shape(gram) != (n, n):
            raise ValueError(f"gram must be {n} x {n} for {n} rows, got {np.shape(gram)}.")
        gram = np.asarray(gram, dtype=np.float64)
        row_means = gram.mean(axis=1)
        gram = gram - row_means[:, None] - row_means[None, :] + row_means.mean()
        eigenvalues, eigenvectors = eigh(gram, subset_by_index=[n - k, n - 1])
        order = np.argsort(eigenvalues)[::-1]
        # Directions the photos do not span (duplicates, constant photos) come out of a
        # float32 Gram matrix as rounding noise; 1/s would blow their vectors up to norms
        # of 1e5, and the RBF kernel of new photos to nothing. Keep only real variance.
        real = eigenvalues[order] > RELATIVE_TOLERANCE * np.finfo(X.dtype).eps * max(
            eigenvalues.max(), 0.0
        )
        order = order[real]
        if len(order) < k:
            warnings.warn(
                f"The photos span only {len(order)} directions; keeping {len(order)} "
                f"components, not {k}.",
                stacklevel=3,
            )
            k = self.n_components_ = max(len(order), 1)
            order = order[:k] if len(order) else np.argsort(eigenvalues)[::-1][:1]
        singular = np.sqrt(np.clip(eigenvalues[order], 1e-12, None))
        # Right singular vectors V = (X - mean)^T U / s, without a centred copy of X.
        weights = (eigenvectors[:, order] / singular).T.astype(X.dtype)
        components = weights @ X
        for row, total in zip(components, weights.sum(axis=1), strict=True):
            row -= total * self.mean_  # one row at a time: no k x d temporary
        norms = np.sqrt(np.einsum("ij,ij->i", components, components))  # no k x d temporary
        components /= norms.clip(1e-12)[:, None]
        signs = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
        self.components_ = components * signs[:, None].astype(X.dtype)
        self.explained_variance_ = singular**2 / (n - 1)
        # The training rows' coordinates are U * s (with the same signs).
        return (eigenvectors[:, order] * (singular * signs)).astype(X.dtype)

    def head(self, k: int) -> GramPCA:
        """This fitted PCA with only its first ``k`` components: for an exact PCA, the
        PCA with ``k`` components (a grid search fits the largest once per fold)."""
        check_is_fitted(self)
        head = copy.copy(self)
        head.n_components = head.n_components_ = min(k, self.n_components_)
        head.components_ = self.components_[: head.n_components_]
        head.explained_variance_ = self.explained_variance_[: head.n_components_]
        return head

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        projected = X @ self.components_.T - self.mean_ @ self.components_.T  # no centred copy
        if self.whiten:
            projected /= np.sqrt(self.explained_variance_).astype(projected.dtype)
        return projected


class PCASVC(ClassifierMixin, BaseEstimator):
    """PCA (see :class:`GramPCA`) then an RBF or linear SVC with class probabilities.

    Parameters
    ----------
    n_components, whiten, solver
        PCA settings (study: 200, no whitening, randomized; see :class:`GramPCA`).
    kernel : {"rbf", "linear"}
    C : float
    gamma : "scale" or float
        RBF width; "scale" is 1 / (n_components * variance), as in scikit-learn.
    probability : bool
        Calibrate the SVC's scores (Platt scaling on 5 internal folds) so that
        ``predict_proba`` exists; ``predict`` stays the SVC's own decision.
    random_state : int or None

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((30, 50)); y = np.repeat([0, 1, 2], 10)
    >>> PCASVC(n_components=5).fit(X, y).predict_proba(X).shape
    (30, 3)
    """

    def __init__(
        self,
        n_components: int = 200,
        whiten: bool = False,
        solver: str = "auto",
        kernel: str = "rbf",
        C: float = 1.0,
        gamma: str | float = "scale",
        probability: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.solver = solver
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.probability = probability
        self.random_state = random_state

    def check_params(self) -> None:
        require("params.n_components", self.n_components, lambda v: is_int(v, 1), "1 or more")
        require("params.C", self.C, positive, "a number above 0")
        require(
            "params.gamma",
            self.gamma,
            lambda v: v in ("scale", "auto") or positive(v),
            "scale, auto or a number above 0",
        )
        require("params.kernel", self.kernel, lambda v: v in ("rbf", "linear"), "rbf or linear")
        require(
            "params.solver",
            self.solver,
            lambda v: v in ("auto", "gram", "randomized"),
            "auto, gram or randomized",
        )
        for name in ("whiten", "probability"):
            require(
                f"params.{name}",
                getattr(self, name),
                lambda v: isinstance(v, bool),
                "true or false",
            )

    def fit(self, X: np.ndarray, y: np.ndarray, gram: np.ndarray | None = None) -> PCASVC:
        """Fit PCA then the SVC; ``gram``: see :meth:`GramPCA.fit`."""
        self.check_params()
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        pca = GramPCA(self.n_components, self.whiten, self.solver, random_state=self.random_state)
        return self.fit_reduced(pca, pca.fit_transform(X, gram=gram), y)

    def fit_reduced(self, pca: GramPCA, reduced: np.ndarray, y: np.ndarray) -> PCASVC:
        """Fit the SVC on rows already projected by the fitted ``pca``, keeping its first
        ``n_components`` (see :meth:`GramPCA.head`)."""
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}.")
        self.pca_ = pca.head(self.n_components)
        reduced = reduced[:, : self.pca_.n_components_]
        if self.probability:
            self.calibrated_ = self._calibrate(reduced, y)
            # With ensemble=False its one SVC was fitted on all rows: it is ours.
            self.svc_ = self.calibrated_.calibrated_classifiers_[0].estimator
        else:
            self.calibrated_ = None
            self.svc_ = fit_svc(reduced, y, self.kernel, self.C, self.gamma)
        self.classes_ = self.svc_.classes_
        return self

    def _calibrate(self, reduced: np.ndarray, y: np.ndarray) -> CalibratedClassifierCV:
        """Platt scaling of the SVC's scores, fitted on internal cross-validation."""
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < 2:
            raise ValueError("Class probabilities need at least 2 photos of every grade.")
        folds = StratifiedKFold(min(5, smallest), shuffle=True, random_state=self.random_state)
        svc = SVC(kernel=self.kernel, C=self.C, gamma=self.gamma)
        calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=folds, ensemble=False)
        return calibrated.fit(reduced.astype(np.float64), y)

    def _reduced(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return self.pca_.transform(X).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_reduced(self._reduced(X))

    def predict_reduced(self, reduced: np.ndarray) -> np.ndarray:
        """Grades of rows projected by a PCA whose first components are this one's."""
        check_is_fitted(self)
        return self.svc_.predict(reduced[:, : self.pca_.n_components_].astype(np.float64))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.probability:
            raise AttributeError("predict_proba needs probability=True.")
        reduced = self._reduced(X)
        return self.calibrated_.predict_proba(reduced)

    # A bundle keeps the calibrated SVC once: svc_ is its own estimator, not a copy.
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: object's own is the live __dict__
        if state.get("calibrated_") is not None:
            state.pop("svc_", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if getattr(self, "calibrated_", None) is not None and not hasattr(self, "svc_"):
            self.svc_ = self.calibrated_.calibrated_classifiers_[0].estimator

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        reduced = self._reduced(X)
        return self.svc_.decision_function(reduced)


def fit_svc(reduced: np.ndarray, y: np.ndarray, kernel: str, C: float, gamma: str | float) -> SVC:
    """An SVC on already reduced features (a grid search reuses one PCA for many C)."""
    return SVC(kernel=kernel, C=C, gamma=gamma).fit(reduced.astype(np.float64), y)
