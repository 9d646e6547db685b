"""A classical run's fold models replayed with numpy, from an export's plain arrays.

``mangograde export`` writes each fold model of a colour, svm or rf run as a description
in ``grader.json`` (``members``) and its arrays in ``model.npz``; this module rebuilds it
without scikit-learn or Numba: the features with the run's own functions
(:mod:`mangograde.features.arrays`, ``.polar_warp``, ``.colour_texture``), then

- a forest (:class:`~mangograde.models.forest.GroupForestClassifier`): its trees' flat
  arrays walked for every photo and tree at once;
- PCA + SVC: the projection as :class:`~mangograde.models.svm.GramPCA` computes it, the
  RBF (or linear) decision values of libsvm's one-against-one pairs in float64, its vote
  (the SVC's own grade) and the Platt sigmoids of its calibration;
- a scaled logistic regression: two array operations and a softmax;
- a soft vote of any of these, a forest behind a PCA or a feature selection, and a stack
  of photo models under a logistic regression.

Every value is checked as it is read: a field that no export writes is refused naming it
(``members[0].classifier.gamma``), and tree children must point forward inside their tree,
so no description can make the grader loop or read outside an array.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..features.arrays import check_images, pixel_vectors, resize_images
from .schema import ManifestError

FEATURE_KINDS = ("pixels", "colour-texture")
CLASSIFIER_KINDS = ("forest", "pca-svc", "scaled-logistic", "soft-vote", "reduced-forest")
_ROWS = 256  # photos walked through the forest at once (bounds its (rows, trees) arrays)


class Reader:
    """Checks a member's description and arrays as they are read, naming each field."""

    def __init__(self, where: Path, arrays: dict[str, np.ndarray]) -> None:
        self.where = where
        self.arrays = arrays

    def fail(self, path: str, value: Any, expected: str) -> ManifestError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return ManifestError(
            f"{self.where}: field {path!r} is {shown}; expected {expected}. Export the run again."
        )

    def value(
        self, spec: Any, path: str, key: str, valid: Callable[[Any], bool], expected: str
    ) -> Any:
        if not isinstance(spec, dict) or key not in spec:
            raise ManifestError(f"{self.where}: field '{path}.{key}' is missing ({expected}).")
        if not valid(spec[key]):
            raise self.fail(f"{path}.{key}", spec[key], expected)
        return spec[key]

    def array(
        self,
        spec: Any,
        path: str,
        key: str,
        kinds: str,
        ndim: int,
        shape: tuple[int | None, ...] | None = None,
        infinite: bool = False,
    ) -> np.ndarray:
        """The array ``model.npz`` holds under the name ``spec[key]``: its dtype kind
        (``f``, ``i``, ``u``), dimensions, (where given) size of each dimension, and finite
        numbers (``infinite``: no NaN)."""
        name = self.value(spec, path, key, lambda v: isinstance(v, str), "an array's name")
        found = self.arrays.get(name)
        expected = f"an array in model.npz of {ndim} dimension(s), of kind {kinds}"
        if found is None or found.dtype.kind not in kinds or found.ndim != ndim:
            raise self.fail(f"{path}.{key}", name, expected)
        if shape is not None and any(
            s is not None and s != f for s, f in zip(shape, found.shape, strict=True)
        ):
            raise self.fail(f"{path}.{key}", name, f"an array of shape {shape}, not {found.shape}")
        if found.dtype.kind == "f" and not np.all(
            np.isfinite(found) | (infinite & ~np.isnan(found))
        ):
            raise self.fail(f"{path}.{key}", name, "numbers" if infinite else "finite numbers")
        return found


def _count(v: Any, least: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


# -- features ------------------------------------------------------------------------------
class PixelFeatures:
    """:class:`~mangograde.features.pixels.PixelVectors`, after a polar warp where the run
    had one."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader) -> None:
        v = read.value
        self.size = v(spec, path, "size", lambda s: s is None or _count(s), "null or a size")
        self.dtype = v(spec, path, "dtype", lambda s: s in ("float32", "float64", "uint8"),
                       "float32, float64 or uint8")  # fmt: skip
        self.shape = tuple(v(spec, path, "image_shape",
                             lambda s: isinstance(s, list) and len(s) == 3
                             and all(_count(n) for n in s) and s[2] == 3,
                             "[height, width, 3]"))  # fmt: skip
        self.polar = v(spec, path, "polar", lambda s: s is None or (
            isinstance(s, dict) and _count(s.get("size"), 2) and _flag(s.get("half"))),
            "null or {size, half}")  # fmt: skip

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        if self.polar is not None:
            from ..features.polar_warp import polar_warp

            size = self.polar["size"]
            images = polar_warp(resize_images(images, size), size, self.polar["half"])
        return pixel_vectors(images, self.size, self.shape, self.dtype)


class ColourFeatures:
    """:class:`~mangograde.features.colour.ColourTexture`'s measurements."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader) -> None:
        v = read.value
        self.settings = (
            v(spec, path, "size", lambda s: _count(s, 16), "16 or more pixels"),
            v(spec, path, "bins", lambda s: _count(s, 2), "2 or more"),
            v(spec, path, "rings", _count, "1 or more"),
            tuple(v(spec, path, "scales", lambda s: isinstance(s, list) and s
                    and all(_positive(x) for x in s), "a list of sigmas above 0")),
            v(spec, path, "saturation", lambda s: _positive(s) and s < 1, "0 to 1"),
        )  # fmt: skip
        self.batch = v(spec, path, "batch", _count, "1 or more photos")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        from ..features.colour_texture import colour_texture  # scipy: only colour needs it

        return colour_texture(images, *self.settings, batch=self.batch)


def read_features(spec: Any, path: str, read: Reader) -> PixelFeatures | ColourFeatures:
    kind = read.value(spec, path, "kind", lambda k: k in FEATURE_KINDS, " or ".join(FEATURE_KINDS))
    return (PixelFeatures if kind == "pixels" else ColourFeatures)(spec, path, read)


# -- classifiers ---------------------------------------------------------------------------
class Forest:
    """:class:`~mangograde.models.forest.GroupForestClassifier`'s trees: ``feature`` (-1 at
    leaves), ``threshold`` (left when ``x <= threshold``), ``left`` / ``right`` (within the
    tree), ``proba`` (class fractions), ``offsets`` (where each tree starts); features
    that were not uint8 are first binned by ``bin_edges``, as the forest bins them."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader, classes: int) -> None:
        a = read.array
        self.features = read.value(spec, path, "n_features", _count, "1 or more")
        self.feature = a(spec, path, "feature", "i", 1)
        n = len(self.feature)
        self.threshold = a(spec, path, "threshold", "u", 1, (n,))
        self.left = a(spec, path, "left", "i", 1, (n,))
        self.right = a(spec, path, "right", "i", 1, (n,))
        self.proba = a(spec, path, "proba", "f", 2, (n, classes))
        self.offsets = a(spec, path, "offsets", "i", 1)
        binned = read.value(spec, path, "binned", _flag, "true or false")
        self.edges = (
            a(spec, path, "bin_edges", "f", 2, (self.features, 255), True) if binned else None
        )
        self._check(read, path)

    def _check(self, read: Reader, path: str) -> None:
        """Children forward inside their tree, features in range: every walk ends."""
        offsets, n = self.offsets, len(self.feature)
        if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 1):
            raise read.fail(f"{path}.offsets", "(array)", "where each tree starts, in order")
        tree = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        local, size = np.arange(n) - offsets[tree], np.diff(offsets)[tree]
        split = self.feature >= 0
        if np.any(self.feature[split] >= self.features):
            raise read.fail(f"{path}.feature", "(array)", f"features below {self.features}")
        for name, child in (("left", self.left), ("right", self.right)):
            if np.any(child[split] <= local[split]) or np.any(child[split] >= size[split]):
                raise read.fail(f"{path}.{name}", "(array)", "children forward in their tree")
        self.start = offsets[:-1].astype(np.int64)
        # global children, and leaves as their own children: one gather per step of a walk
        self.leaf = ~split
        own = np.arange(n)
        self.low = np.where(split, self.left + offsets[tree], own)
        self.high = np.where(split, self.right + offsets[tree], own)
        self.split_feature = np.where(split, self.feature, 0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.edges is not None:
            X = np.asarray(X, np.float64)
            codes = np.empty(X.shape, dtype=np.uint8)
            for j in range(X.shape[1]):
                codes[:, j] = np.searchsorted(self.edges[j], X[:, j], side="left")
            X = codes
        if X.dtype != np.uint8 or X.shape[1] != self.features:
            raise ValueError(f"The forest reads {self.features} uint8 features, got {X.shape}.")
        parts = [self._walk(X[i : i + _ROWS]) for i in range(0, len(X), _ROWS)]
        total = np.concatenate(parts) if parts else np.zeros((0, self.proba.shape[1]))
        return total / len(self.start)

    def _walk(self, X: np.ndarray) -> np.ndarray:
        """Sum over trees of each row's leaf class fractions."""
        trees = len(self.start)
        node = np.tile(self.start, len(X))  # (rows * trees) global node of each walk
        base = np.repeat(np.arange(len(X), dtype=np.int64) * X.shape[1], trees)
        flat = np.ascontiguousarray(X).ravel()
        going = np.arange(len(node))
        while going.size:  # the walks not yet at a leaf, one level down each time
            at = node[going]
            inside = ~self.leaf[at]
            going, at = going[inside], at[inside]
            left = flat[base[going] + self.split_feature[at]] <= self.threshold[at]
            node[going] = np.where(left, self.low[at], self.high[at])
        return self.proba[node].reshape(len(X), trees, -1).sum(axis=1)


class PCASVC:
    """:class:`~mangograde.models.svm.PCASVC`: the projection, libsvm's pair decision values,
    its vote, and the calibration's sigmoids (one per class, normalised)."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader, classes: int) -> None:
        a, v = read.array, read.value
        self.components = a(spec, path, "components", "f", 2)
        k, d = self.components.shape
        self.mean = a(spec, path, "mean", "f", 1, (d,))
        self.scale = a(spec, path, "whiten_scale", "f", 1, (k,)) if v(
            spec, path, "whiten", _flag, "true or false") else None  # fmt: skip
        self.kernel = v(spec, path, "kernel", lambda s: s in ("rbf", "linear"), "rbf or linear")
        self.gamma = float(v(spec, path, "gamma", _positive, "a number above 0"))
        self.vectors = a(spec, path, "support_vectors", "f", 2, (None, k))
        self.norms = (self.vectors**2).sum(1)
        self.n_support = a(spec, path, "n_support", "i", 1, (classes,))
        if self.n_support.min() < 0 or self.n_support.sum() != len(self.vectors):
            raise read.fail(f"{path}.n_support", "(array)", "support vectors per class")
        self.dual = a(spec, path, "dual_coef", "f", 2, (classes - 1, len(self.vectors)))
        pairs = classes * (classes - 1) // 2
        self.intercept = a(spec, path, "intercept", "f", 1, (pairs,))
        calibrators = 1 if classes == 2 else classes
        self.a = a(spec, path, "sigmoid_a", "f", 1, (calibrators,))
        self.b = a(spec, path, "sigmoid_b", "f", 1, (calibrators,))
        self.classes = classes

    def decisions(self, X: np.ndarray) -> np.ndarray:
        """libsvm's decision value of each pair (i, j), i < j: above 0 votes for i."""
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32)  # as GramPCA reads it
        reduced = X @ self.components.T - self.mean @ self.components.T
        if self.scale is not None:
            reduced /= self.scale.astype(reduced.dtype)
        reduced = reduced.astype(np.float64)
        sv = self.vectors
        if self.kernel == "rbf":
            # |x - v|^2 as |x|^2 + |v|^2 - 2 x.v (one matrix product: 20x faster than the
            # differences on svm-study's fold 0, the kernel within 2e-15 of theirs there)
            squared = (reduced**2).sum(1)[:, None] + self.norms[None, :] - 2 * (reduced @ sv.T)
            kernel = np.exp(-self.gamma * np.maximum(squared, 0.0))
        else:
            kernel = reduced @ sv.T
        ends = np.concatenate([[0], np.cumsum(self.n_support)])
        out, pair = [], 0
        for i in range(self.classes):
            for j in range(i + 1, self.classes):
                own, their = slice(ends[i], ends[i + 1]), slice(ends[j], ends[j + 1])
                value = kernel[:, own] @ self.dual[j - 1, own] + kernel[:, their] @ self.dual[
                    i, their] + self.intercept[pair]  # fmt: skip
                out.append(value)
                pair += 1
        return np.stack(out, 1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.calibrated(self.decisions(X))

    def calibrated(self, dec: np.ndarray) -> np.ndarray:
        """CalibratedClassifierCV's probabilities from the decision values: scikit-learn's
        one-vs-rest scores of the pairs, a sigmoid each, normalised."""
        if self.classes == 2:
            p1 = 1.0 / (1.0 + np.exp(self.a[0] * -dec[:, 0] + self.b[0]))
            proba = np.column_stack([1.0 - p1, p1])
        else:
            votes = np.zeros((len(dec), self.classes))
            confidence = np.zeros((len(dec), self.classes))
            pair = 0
            for i in range(self.classes):
                for j in range(i + 1, self.classes):
                    confidence[:, i] += dec[:, pair]
                    confidence[:, j] -= dec[:, pair]
                    votes[dec[:, pair] >= 0, i] += 1  # scikit-learn: dec < 0 is j's vote
                    votes[dec[:, pair] < 0, j] += 1
                    pair += 1
            scores = votes + confidence / (3 * (np.abs(confidence) + 1))
            proba = 1.0 / (1.0 + np.exp(self.a * scores + self.b))
            total = proba.sum(axis=1)[:, None]
            uniform = np.full_like(proba, 1 / self.classes)
            proba = np.divide(proba, total, out=uniform, where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def votes(self, X: np.ndarray) -> np.ndarray:
        """The SVC's own grades (libsvm: each pair votes, the first most voted wins)."""
        dec = self.decisions(X)
        votes = np.zeros((len(dec), self.classes), dtype=np.int64)
        pair = 0
        for i in range(self.classes):
            for j in range(i + 1, self.classes):
                votes[np.arange(len(dec)), np.where(dec[:, pair] > 0, i, j)] += 1
                pair += 1
        return votes.argmax(axis=1)


class ScaledLogistic:
    """StandardScaler (optional) then a multinomial (or binary) logistic regression, with
    scikit-learn's own operations and dtypes."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader, classes: int) -> None:
        a = read.array
        rows = 1 if classes == 2 else classes
        self.coef = a(spec, path, "coef", "f", 2, (rows, None))
        d = self.coef.shape[1]
        self.intercept = a(spec, path, "intercept", "f", 1, (rows,))
        scaled = read.value(spec, path, "scaled", _flag, "true or false")
        self.mean = a(spec, path, "scaler_mean", "f", 1, (d,)) if scaled else None
        self.scale = a(spec, path, "scaler_scale", "f", 1, (d,)) if scaled else None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=X.dtype if X.dtype.kind == "f" else np.float64)
        if self.mean is not None:  # scikit-learn 1.9 casts its statistics to the features'
            X -= self.mean.astype(X.dtype)
            X /= self.scale.astype(X.dtype)
        decision = X @ self.coef.T + self.intercept
        if len(self.coef) == 1:
            p = 1.0 / (1.0 + np.exp(-decision[:, 0]))
            return np.column_stack([1 - p, p])
        decision -= decision.max(axis=1, keepdims=True)
        np.exp(decision, out=decision)
        decision /= decision.sum(axis=1, keepdims=True)
        return decision


class SoftVote:
    """scikit-learn's VotingClassifier (soft): the weighted mean of its members' probabilities."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader, classes: int) -> None:
        parts = read.value(spec, path, "members", lambda m: isinstance(m, list) and m,
                           "a list of classifiers")  # fmt: skip
        self.members = [read_classifier(m, f"{path}.members[{i}]", read, classes)
                        for i, m in enumerate(parts)]  # fmt: skip
        self.weights = read.value(spec, path, "weights", lambda w: w is None or (
            isinstance(w, list) and len(w) == len(parts) and all(_positive(x) for x in w)),
            "null or a weight above 0 per member")  # fmt: skip

    def __call__(self, X: np.ndarray) -> np.ndarray:
        probas = np.asarray([m(X) for m in self.members])
        return np.average(probas, axis=0, weights=self.weights)


class ReducedForest:
    """:class:`~mangograde.models.classical.ReducedForest`: a forest behind a PCA, a
    selection of features, or nothing."""

    def __init__(self, spec: dict[str, Any], path: str, read: Reader, classes: int) -> None:
        self.reducer = read.value(spec, path, "reducer", lambda r: r in ("none", "select", "pca"),
                                  "none, select or pca")  # fmt: skip
        if self.reducer == "select":
            self.columns = read.array(spec, path, "columns", "i", 1)
        elif self.reducer == "pca":
            self.components = read.array(spec, path, "components", "f", 2)
            k, d = self.components.shape
            self.mean = read.array(spec, path, "mean", "f", 1, (d,))
            whiten = read.value(spec, path, "whiten", _flag, "true or false")
            self.scale = read.array(spec, path, "whiten_scale", "f", 1, (k,)) if whiten else None
        self.forest = Forest(read.value(spec, path, "forest", lambda f: isinstance(f, dict),
                                        "a forest"), f"{path}.forest", read, classes)  # fmt: skip

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.reducer == "select":
            X = X[:, self.columns]
        elif self.reducer == "pca":
            X = np.asarray(X, dtype=np.float32 if X.dtype != np.float64 else np.float64)
            X = X @ self.components.T - self.mean @ self.components.T
            if self.scale is not None:
                X /= self.scale.astype(X.dtype)
        return self.forest(X)


_CLASSIFIERS: dict[str, Any] = {
    "forest": Forest,
    "pca-svc": PCASVC,
    "scaled-logistic": ScaledLogistic,
    "soft-vote": SoftVote,
    "reduced-forest": ReducedForest,
}


def read_classifier(spec: Any, path: str, read: Reader, classes: int) -> Any:
    kind = read.value(spec, path, "kind", lambda k: k in _CLASSIFIERS, " or ".join(_CLASSIFIERS))
    return _CLASSIFIERS[kind](spec, path, read, classes)


# -- photo models and stacks ---------------------------------------------------------------
class PhotoModel:
    """Features then a classifier; probabilities placed in the run's grade columns."""

    def __init__(self, spec: Any, path: str, read: Reader, grades: int) -> None:
        v = read.value
        self.classes = v(spec, path, "classes", lambda c: isinstance(c, list) and len(c) >= 2
                         and all(_count(x, 0) and x < grades for x in c) and c == sorted(set(c)),
                         f"the model's grade codes, increasing, below {grades}")  # fmt: skip
        self.grades = grades
        features = v(spec, path, "features", lambda f: isinstance(f, dict), "the features")
        self.features = read_features(features, f"{path}.features", read)
        # fold models with the same features (they learn nothing) share the photos' vectors
        self.features_key: str | None = json.dumps(features, sort_keys=True)
        self.classifier = read_classifier(v(spec, path, "classifier", lambda c: isinstance(
            c, dict), "a classifier"), f"{path}.classifier", read, len(self.classes))  # fmt: skip
        self.own_grades = v(spec, path, "grades_by", lambda g: g in ("most-likely", "svc-votes"),
                            "most-likely or svc-votes")  # fmt: skip
        if self.own_grades == "svc-votes" and not isinstance(self.classifier, PCASVC):
            raise read.fail(f"{path}.grades_by", self.own_grades, "svc-votes only for a pca-svc")

    def vectors(self, images: np.ndarray) -> np.ndarray:
        return self.features(images)

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        placed = np.zeros((len(vectors), self.grades))
        placed[:, self.classes] = self.classifier(vectors)
        return placed

    def own(self, vectors: np.ndarray) -> np.ndarray | None:
        """The model's own grade codes where its rule is not the most likely grade."""
        if self.own_grades != "svc-votes":
            return None
        return np.asarray(self.classes)[self.classifier.votes(vectors)]

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float64)


class StackModel:
    """:class:`~mangograde.models.stack.StackedGrader` of photo models: each member on the
    photos resized to its size, log of its clipped probabilities, a logistic regression."""

    FLOOR = 1e-4
    features_key = None  # its members read the photos themselves

    def __init__(self, spec: Any, path: str, read: Reader, grades: int) -> None:
        v = read.value
        parts = v(spec, path, "members", lambda m: isinstance(m, list) and len(m) >= 2,
                  "a list of 2 or more members")  # fmt: skip
        self.sizes = [v(m, f"{path}.members[{i}]", "size", _count, "a photo size")
                      for i, m in enumerate(parts)]  # fmt: skip
        self.members = [PhotoModel(v(m, f"{path}.members[{i}]", "model", lambda x: isinstance(
            x, dict), "a photo model"), f"{path}.members[{i}].model", read, grades)
            for i, m in enumerate(parts)]  # fmt: skip
        meta = v(spec, path, "meta", lambda x: isinstance(x, dict), "a logistic regression")
        self.meta = ScaledLogistic(meta, f"{path}.meta", read, grades)
        self.grades = grades

    def vectors(self, images: np.ndarray) -> np.ndarray:
        return images  # a stack gives no features for familiarity: its members read photos

    def proba(self, images: np.ndarray) -> np.ndarray:
        member = [m.proba(m.vectors(resize_images(images, size)))
                  for m, size in zip(self.members, self.sizes, strict=True)]  # fmt: skip
        stacked = np.stack(member, axis=1)
        features = np.log(np.clip(stacked, self.FLOOR, 1.0)).reshape(len(images), -1)
        return self.meta(features)

    def own(self, images: np.ndarray) -> None:
        return None

    def embed(self, images: np.ndarray) -> np.ndarray:
        raise ValueError("A stack gives no features for a familiarity model.")


def read_member(spec: Any, path: str, read: Reader, grades: int) -> PhotoModel | StackModel:
    kind = read.value(spec, path, "kind", lambda k: k in ("photo", "stack"), "photo or stack")
    return (PhotoModel if kind == "photo" else StackModel)(spec, path, read, grades)
