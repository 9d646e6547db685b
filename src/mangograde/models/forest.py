"""A random forest whose bootstrap draws whole groups, so its OOB score can be honest.

With flip/rotate copies (and several photos of one fruit), scikit-learn's row bootstrap
judges almost every "out-of-bag" photo with trees that trained on its siblings: the
study's OOB of 0.82 against 0.61 on the test set. Here each tree first draws groups with
replacement; rows of the drawn groups then get Poisson bootstrap weights, one draw per
time the group was drawn. Rows a tree never saw give the raw OOB score, as scikit-learn
defines it; rows whose whole group the tree never saw give the honest OOB score.

The trees are CART with Gini impurity, grown by the Numba kernels in ``_trees`` on 8-bit
features: pixels as they are, other features binned into 256 quantiles.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..basics.progress import track
from . import _trees
from .validation import is_int, is_number, require, share

_NO_DEPTH_LIMIT = 2**31 - 1


def _tree_weights(
    codes: np.ndarray | None, n_groups: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    counts = np.bincount(rng.integers(0, n_groups, draws), minlength=n_groups)
    if codes is None:  # every row its own group: the usual bootstrap
        return counts.astype(np.float64)
    return rng.poisson(counts[codes]).astype(np.float64)


def _bin_edges(X: np.ndarray) -> np.ndarray:
    """Per feature, at most 255 cut points: midpoints of the distinct values, or quantiles."""
    edges = np.full((X.shape[1], 255), np.inf)
    for j in range(X.shape[1]):
        values = np.unique(X[:, j])
        if len(values) > 256:
            values = np.unique(np.quantile(X[:, j], np.linspace(0, 1, 257)))
        cuts = (values[:-1] + values[1:]) / 2
        edges[j, : len(cuts)] = cuts[:255]
    return edges


def _binned(X: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    if edges is None:
        return X
    codes = np.empty(X.shape, dtype=np.uint8)
    for j in range(X.shape[1]):
        codes[:, j] = np.searchsorted(edges[j], X[:, j], side="left")
    return codes


class GroupForestClassifier(ClassifierMixin, BaseEstimator):
    """Random forest of Gini CART trees, bootstrapped by group.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_features : "sqrt", "log2", int, float or None
        Features tried per split (a count, or a fraction of them; None: all).
    min_samples_leaf, min_samples_split : int or float
        As in :class:`sklearn.ensemble.RandomForestClassifier` (a float is a fraction).
    min_weight_fraction_leaf : float
        Smallest share of the total sample weight in a leaf.
    max_depth : int or None
    max_samples : int, float or None
        Groups drawn per tree: a count, a fraction of the groups, or None for all of them.
        Fewer draws make each tree faster and more different from the others.
    class_weight : "balanced", dict or None
    oob_score : bool
        Compute ``oob_score_`` (raw) and ``honest_oob_score_`` after fitting.
    n_jobs : int or None
        Threads growing trees (-1 or None: all cores).
    random_state : int or None
        Seed; the same seed gives the same forest, whatever ``n_jobs``.
    progress : bool or None
        Show a progress bar (None: on a terminal only).

    Attributes
    ----------
    classes_ : ndarray
    n_trees_ : int
    feature_importances_ : ndarray
        Mean decrease in Gini impurity, normalised per tree.
    oob_score_ : float
        Accuracy of each row judged by the trees that did not draw that row (as
        scikit-learn computes it). Leaks when rows have siblings.
    honest_oob_score_ : float
        Accuracy of each row judged only by trees that drew nothing of its group.
    oob_coverage_ : float
        Fraction of rows that at least one tree could judge honestly.
    oob_decision_function_ : ndarray
        Honest OOB class fractions per row (zeros where no tree could judge it).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).random((40, 5)); y = (X[:, 0] > 0.5).astype(int)
    >>> GroupForestClassifier(n_estimators=10, random_state=0).fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        *,
        max_features: str | int | float | None = "sqrt",
        min_samples_leaf: int | float = 1,
        min_samples_split: int | float = 2,
        min_weight_fraction_leaf: float = 0.0,
        max_depth: int | None = None,
        max_samples: int | float | None = None,
        class_weight: str | dict | None = None,
        oob_score: bool = False,
        n_jobs: int | None = None,
        random_state: int | None = None,
        progress: bool | None = False,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.min_samples_split = min_samples_split
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.max_depth = max_depth
        self.max_samples = max_samples
        self.class_weight = class_weight
        self.oob_score = oob_score
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    # -- settings ------------------------------------------------------------------------
    def _draws(self, n_groups: int) -> int:
        m = self.max_samples
        if m is None:
            return n_groups
        if isinstance(m, Integral) and not isinstance(m, bool) and m >= 1:
            return int(m)
        if isinstance(m, Real) and 0 < m <= 1:
            return max(1, round(m * n_groups))
        raise ValueError(
            f"max_samples must be None, a count of groups (>= 1) or a fraction in (0, 1], "
            f"got {m!r}."
        )

    def _n_features_per_split(self, n_features: int) -> int:
        m = self.max_features
        if m is None:
            return n_features
        if m == "sqrt":
            return max(1, int(math.sqrt(n_features)))
        if m == "log2":
            return max(1, int(math.log2(n_features)))
        if isinstance(m, Integral) and not isinstance(m, bool) and m >= 1:
            return min(int(m), n_features)
        if isinstance(m, Real) and not isinstance(m, bool) and 0 < m <= 1:
            return max(1, int(m * n_features))
        raise ValueError(
            f"max_features must be 'sqrt', 'log2', None, a count >= 1 or a fraction in (0, 1],"
            f" got {m!r}."
        )

    @staticmethod
    def _count(value: int | float, n: int, name: str, least: int) -> int:
        if isinstance(value, Integral) and not isinstance(value, bool) and value >= least:
            return int(value)
        if isinstance(value, Real) and not isinstance(value, bool) and 0 < value <= 1:
            return max(least, math.ceil(value * n))
        raise ValueError(f"{name} must be an integer >= {least} or a fraction in (0, 1].")

    def _class_weights(self, y_codes: np.ndarray) -> np.ndarray:
        k = len(self.classes_)
        if self.class_weight is None:
            return np.ones(k)
        if self.class_weight == "balanced":
            return len(y_codes) / (k * np.bincount(y_codes, minlength=k).clip(min=1))
        if isinstance(self.class_weight, dict):
            return np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        raise ValueError(
            f"class_weight must be None, 'balanced' or a dict, not {self.class_weight!r}."
        )

    def _threads(self) -> int:
        cores = os.cpu_count() or 1
        if self.n_jobs is None or self.n_jobs < 0:
            return max(1, cores + 1 + (self.n_jobs or -1))
        return max(1, int(self.n_jobs))

    def check_params(self) -> None:
        require("params.n_estimators", self.n_estimators, lambda v: is_int(v, 1), "1 or more")
        require(
            "params.max_features",
            self.max_features,
            lambda v: v is None or v in ("sqrt", "log2") or is_int(v, 1) or share(v),
            "sqrt, log2, a whole number of features or a share in (0, 1]",
        )
        require(
            "params.min_samples_leaf",
            self.min_samples_leaf,
            lambda v: is_int(v, 1) or (share(v) and v < 1),
            "a whole number of at least 1 or a share below 1",
        )
        require(
            "params.min_samples_split",
            self.min_samples_split,
            lambda v: is_int(v, 2) or share(v),
            "a whole number of at least 2 or a share in (0, 1]",
        )
        require(
            "params.max_depth", self.max_depth, lambda v: v is None or is_int(v, 1), "1 or more"
        )
        require(
            "params.max_samples",
            self.max_samples,
            lambda v: v is None or is_int(v, 1) or share(v),
            "a whole number or a share in (0, 1]",
        )
        require(
            "params.min_weight_fraction_leaf",
            self.min_weight_fraction_leaf,
            lambda v: is_number(v) and 0 <= v <= 0.5,
            "a number from 0 to 0.5",
        )
        require(
            "params.class_weight",
            self.class_weight,
            lambda v: v is None or v == "balanced" or isinstance(v, dict),
            "balanced or a mapping of grades to weights",
        )
        require(
            "params.n_jobs",
            self.n_jobs,
            lambda v: v is None or (is_int(v, -(os.cpu_count() or 1)) and v != 0),
            "a number of threads (-1: all)",
        )
        require("params.oob_score", self.oob_score, lambda v: isinstance(v, bool), "true or false")

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        feature_permutations: np.ndarray | None = None,
    ) -> GroupForestClassifier:
        """Fit the forest; rows sharing a value of ``groups`` are drawn together.

        Parameters
        ----------
        X : array of shape (n_rows, n_features)
            uint8 is used as it is (pixels); other numbers are first binned into at most
            256 levels per feature.
        y : array of shape (n_rows,)
        groups : array of shape (n_rows,) or None
        feature_permutations : int array of shape (n_copies, n_features) or None
            Train on ``n_copies`` copies of every row, copy ``k`` having feature ``f`` equal
            to the row's feature ``feature_permutations[k, f]`` (a flip or rotation of a
            photo's pixels). Copies are never stored, and a row's copies share its group
            (the row itself when ``groups`` is None), so OOB scores treat them as siblings.
        """
        X, y = validate_data(self, X, y, dtype=None, ensure_min_samples=2, order=None)
        check_classification_targets(y)
        if not isinstance(self.n_estimators, Integral) or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {self.n_estimators!r}.")
        if X.dtype != np.uint8:
            X = np.asarray(X, dtype=np.float64)
            self.bin_edges_ = _bin_edges(X)
            X = _binned(X, self.bin_edges_)
        else:
            self.bin_edges_ = None
        self.classes_, y_codes = np.unique(y, return_inverse=True)
        n_photos = len(y_codes)
        perms = self._permutations(feature_permutations, X.shape[1])
        copies = len(perms)
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != n_photos:
                raise ValueError(f"groups has {len(groups)} entries for {n_photos} rows.")
            _, group_codes = np.unique(groups, return_inverse=True)
        elif copies > 1:
            group_codes = np.arange(n_photos)
        else:
            group_codes = None
        base_of = np.tile(np.arange(n_photos, dtype=np.int64), copies)
        op_of = np.repeat(np.arange(copies, dtype=np.int64), n_photos)
        y_codes = y_codes.astype(np.int64)[base_of]
        n = len(y_codes)
        codes = None if group_codes is None else group_codes[base_of]
        n_groups = n if codes is None else int(codes.max()) + 1
        draws = self._draws(n_groups)
        settings = (
            len(self.classes_),
            self._n_features_per_split(X.shape[1]),
            self._count(self.min_samples_split, n, "min_samples_split", 2),
            self._count(self.min_samples_leaf, n, "min_samples_leaf", 1),
            float(self.min_weight_fraction_leaf),
            _NO_DEPTH_LIMIT if self.max_depth is None else int(self.max_depth),
        )
        class_weights = self._class_weights(y_codes)[y_codes]  # balanced over all copies
        XT = np.ascontiguousarray(X.T)  # feature-major: one short row per feature
        perms_t = np.ascontiguousarray(perms.T)  # a feature's copies side by side
        seeds = check_random_state(self.random_state).randint(0, 2**31 - 1, self.n_estimators)
        k = len(self.classes_)
        raw, honest = np.zeros((n, k)), np.zeros((n, k))
        trees: list[tuple] = [()] * self.n_estimators

        def grow(t: int) -> tuple[np.ndarray, np.ndarray]:
            rng = np.random.default_rng(int(seeds[t]))
            weights = _tree_weights(codes, n_groups, draws, rng)
            if not weights.any():
                weights[rng.integers(n)] = 1.0
            tree = _trees.build_tree(
                XT, perms_t, base_of, op_of, y_codes, weights * class_weights, *settings,
                int(seeds[t]),
            )  # fmt: skip
            trees[t] = tree
            return t, weights > 0

        workers = self._threads()
        with ThreadPoolExecutor(workers) as pool:
            grown = pool.map(grow, range(self.n_estimators))
            for t, in_bag in track(grown, self.n_estimators, "Growing trees", self.progress):
                if self.oob_score:
                    rows = (XT, perms_t, base_of, op_of)
                    self._add_oob(trees[t], rows, in_bag, codes, raw, honest)
        self._store(trees)
        if self.oob_score:
            self.oob_score_ = _judged_accuracy(raw, y_codes)
            self.honest_oob_score_ = _judged_accuracy(honest, y_codes)
            self.oob_coverage_ = float(np.mean(honest.sum(axis=1) > 0))
            self.oob_decision_function_ = honest / honest.sum(axis=1, keepdims=True).clip(1e-12)
        return self

    @staticmethod
    def _permutations(permutations: np.ndarray | None, n_features: int) -> np.ndarray:
        if permutations is None:
            return np.arange(n_features, dtype=np.int64)[None, :]
        perms = np.asarray(permutations, dtype=np.int64)
        if perms.ndim != 2 or perms.shape[1] != n_features:
            raise ValueError(
                f"feature_permutations must have shape (n_copies, {n_features}), got {perms.shape}."
            )
        if perms.min() < 0 or perms.max() >= n_features:
            raise ValueError("feature_permutations holds feature indices out of range.")
        return np.ascontiguousarray(perms)

    @staticmethod
    def _add_oob(tree, rows, in_bag, codes, raw, honest) -> None:
        feature, threshold, left, right, value = tree[:5]
        proba = value / value.sum(axis=1, keepdims=True).clip(1e-12)
        nodes = (feature, threshold, left, right, proba, 0, *rows)
        out = np.flatnonzero(~in_bag)
        _trees.oob_votes(*nodes, out, raw)
        if codes is None:
            _trees.oob_votes(*nodes, out, honest)
            return
        group_seen = np.bincount(codes, weights=in_bag, minlength=codes.max() + 1) > 0
        _trees.oob_votes(*nodes, out[~group_seen[codes[out]]], honest)

    def _store(self, trees: list[tuple]) -> None:
        sizes = [len(t[0]) for t in trees]
        self.tree_offsets_ = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        names = ("feature", "threshold", "left", "right", "value", "impurity", "weight")
        for index, name in enumerate(names):
            setattr(self, f"tree_{name}_", np.concatenate([t[index] for t in trees]))
        value = self.tree_value_
        self.tree_proba_ = value / value.sum(axis=1, keepdims=True).clip(1e-12)
        self.n_trees_ = len(trees)

    # -- loading -------------------------------------------------------------------------
    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "tree_offsets_" in state:
            self._check_trees()

    def _check_trees(self) -> None:
        """Refuse tree arrays that would send the Numba kernels out of bounds or round a
        cycle: children must point forward inside their tree, features below
        ``n_features_in_``, thresholds and leaf values finite, every array the same length.
        """

        def fail(what: str) -> None:
            raise ValueError(f"the forest's trees are malformed: {what}")

        names = ("feature", "threshold", "left", "right", "impurity", "weight")
        nodes = [np.asarray(getattr(self, f"tree_{n}_", None)) for n in names]
        feature, threshold, left, right = nodes[:4]
        n = len(feature)
        if any(a.ndim != 1 or len(a) != n for a in nodes) or n == 0:
            fail("its node arrays differ in length or shape")
        if any(a.dtype.kind not in "iu" for a in (feature, left, right)):
            fail("feature and child indices must be integers")
        offsets = np.asarray(self.tree_offsets_)
        classes = len(np.asarray(self.classes_))
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or len(offsets) < 2:
            fail("tree_offsets_ must list where each tree starts")
        if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 1):
            fail("tree_offsets_ do not cut the nodes into trees")
        if int(self.n_trees_) != len(offsets) - 1:
            fail(f"n_trees_ is {self.n_trees_} but there are {len(offsets) - 1} trees")
        for name in ("tree_value_", "tree_proba_"):
            values = np.asarray(getattr(self, name, None))
            if values.shape != (n, classes) or not np.all(np.isfinite(values)):
                fail(f"{name} must be finite, {n} x {classes}")
        tree = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        local, size = np.arange(n) - offsets[tree], np.diff(offsets)[tree]
        split = feature >= 0
        if np.any(feature[split] >= int(self.n_features_in_)):
            fail(f"a split names a feature beyond the {self.n_features_in_} it was fitted on")
        for name, child in (("left", left), ("right", right)):
            if np.any(child[split] <= local[split]) or np.any(child[split] >= size[split]):
                fail(f"a {name} child points outside its tree or backwards (a cycle)")
        if not np.all(np.isfinite(np.asarray(threshold[split], dtype=np.float64))):
            fail("a split threshold is not a finite number")

    # -- prediction ----------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=None, reset=False)
        X = (
            _binned(np.asarray(X, np.float64), self.bin_edges_)
            if self.bin_edges_ is not None
            else X
        )
        if X.dtype != np.uint8:
            raise ValueError(f"This forest was fitted on uint8 pixels; got {X.dtype} features.")
        X = np.ascontiguousarray(X)
        out = np.zeros((len(X), len(self.classes_)))
        chunks = np.array_split(np.arange(len(X)), min(len(X), self._threads()) or 1)

        def run(rows: np.ndarray) -> None:
            part = np.zeros((len(rows), out.shape[1]))
            _trees.forest_proba(
                self.tree_feature_, self.tree_threshold_, self.tree_left_, self.tree_right_,
                self.tree_proba_, self.tree_offsets_, X[rows], part,
            )  # fmt: skip
            out[rows] = part

        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(run, chunks))
        return out / self.n_trees_

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean decrease in Gini impurity per feature, each tree normalised to sum 1."""
        check_is_fitted(self)
        importances = np.zeros(self.n_features_in_)
        for t in range(self.n_trees_):
            lo, hi = self.tree_offsets_[t], self.tree_offsets_[t + 1]
            feature = self.tree_feature_[lo:hi]
            split = np.flatnonzero(feature >= 0)
            if not len(split):
                continue
            weight, impurity = self.tree_weight_[lo:hi], self.tree_impurity_[lo:hi]
            kids_l, kids_r = self.tree_left_[lo:hi][split], self.tree_right_[lo:hi][split]
            gain = (
                weight[split] * impurity[split]
                - weight[kids_l] * impurity[kids_l]
                - weight[kids_r] * impurity[kids_r]
            )
            tree = np.bincount(feature[split], weights=gain, minlength=self.n_features_in_)
            if tree.sum() > 0:
                importances += tree / tree.sum()
        total = importances.sum()
        return importances / total if total > 0 else importances


def _judged_accuracy(votes: np.ndarray, y: np.ndarray) -> float:
    """Accuracy over the rows at least one tree judged; NaN when none was."""
    judged = votes.sum(axis=1) > 0
    if not judged.any():
        return float("nan")
    return float(np.mean(np.argmax(votes[judged], axis=1) == y[judged]))
