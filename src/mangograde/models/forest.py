"""A random forest whose bootstrap draws whole groups, so its OOB score can be honest.

With flip/rotate copies (and several photos of one fruit), scikit-learn's row bootstrap
judges almost every "out-of-bag" photo with trees that trained on its siblings: the
study's OOB of 0.82 against 0.61 on the test set. Here each tree first draws groups with
replacement; rows of the drawn groups then get Poisson(1) bootstrap weights per draw.
Rows a tree never saw give the raw OOB score, as scikit-learn defines it; rows whose
whole group the tree never saw give the honest OOB score.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..progress import track


def _tree_weights(
    codes: np.ndarray | None, n_groups: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    counts = np.bincount(rng.integers(0, n_groups, draws), minlength=n_groups)
    if codes is None:  # every row its own group: the usual bootstrap
        return counts.astype(np.float64)
    return rng.poisson(counts[codes]).astype(np.float64)


def _predict_rows(tree: DecisionTreeClassifier, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Leaf class fractions for ``X[rows]``, walking the tree without copying those rows
    (a fancy-indexed copy of wide pixel rows costs more than the walk)."""
    inner = tree.tree_
    node = np.zeros(len(rows), dtype=np.intp)
    active = np.flatnonzero(inner.children_left[node] >= 0)
    while len(active):
        at = node[active]
        go_left = X[rows[active], inner.feature[at]] <= inner.threshold[at]
        node[active] = np.where(go_left, inner.children_left[at], inner.children_right[at])
        active = active[inner.children_left[node[active]] >= 0]
    values = inner.value[node, 0, :]
    return values / values.sum(axis=1, keepdims=True)


class GroupForestClassifier(ClassifierMixin, BaseEstimator):
    """Random forest of scikit-learn decision trees, bootstrapped by group.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_features, min_samples_leaf, min_samples_split, min_weight_fraction_leaf, max_depth,
    class_weight
        As in :class:`sklearn.ensemble.RandomForestClassifier`.
    max_samples : int, float or None
        Groups drawn per tree: a count, a fraction of the groups, or None for all of them.
        Fewer draws make each tree faster and more different from the others.
    oob_score : bool
        Compute ``oob_score_`` (raw) and ``honest_oob_score_`` after fitting.
    n_jobs : int or None
        Trees are fitted on this many threads (-1: all cores).
    random_state : int or None
        Seed; the same seed gives the same forest.

    Attributes
    ----------
    classes_ : ndarray
    estimators_ : list of DecisionTreeClassifier
    feature_importances_ : ndarray
    oob_score_ : float
        Accuracy of each row judged by the trees that did not draw that row (as
        scikit-learn computes it). Leaks when rows have siblings.
    honest_oob_score_ : float
        Accuracy of each row judged only by trees that drew nothing of its group.
    oob_coverage_ : float
        Fraction of rows that at least one tree could judge honestly.

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
        splitter: str = "best",
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
        self.splitter = splitter
        self.class_weight = class_weight
        self.oob_score = oob_score
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

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

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> GroupForestClassifier:
        """Fit the forest; rows sharing a value of ``groups`` are drawn together."""
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        check_classification_targets(y)
        if not isinstance(self.n_estimators, Integral) or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {self.n_estimators!r}.")
        self.classes_, y_codes = np.unique(y, return_inverse=True)
        if groups is None:
            codes, n_groups = None, len(y)
        else:
            groups = np.asarray(groups)
            if len(groups) != len(y):
                raise ValueError(f"groups has {len(groups)} entries for {len(y)} rows.")
            _, codes = np.unique(groups, return_inverse=True)
            n_groups = int(codes.max()) + 1
        draws = self._draws(n_groups)
        class_weight = self.class_weight
        if isinstance(class_weight, dict):  # the trees see class codes, not labels
            class_weight = {
                code: class_weight.get(label, 1.0) for code, label in enumerate(self.classes_)
            }
        seeds = check_random_state(self.random_state).randint(0, 2**31 - 1, self.n_estimators)
        y_codes = y_codes.astype(np.float64)

        def grow(seed: int) -> tuple[DecisionTreeClassifier, np.ndarray]:
            rng = np.random.default_rng(seed)
            weights = _tree_weights(codes, n_groups, draws, rng)
            if not weights.any():
                weights[rng.integers(len(weights))] = 1.0
            tree = DecisionTreeClassifier(
                max_features=self.max_features,
                min_samples_leaf=self.min_samples_leaf,
                min_samples_split=self.min_samples_split,
                min_weight_fraction_leaf=self.min_weight_fraction_leaf,
                max_depth=self.max_depth,
                splitter=self.splitter,
                class_weight=class_weight,
                random_state=seed,
            )
            tree.fit(X, y_codes, sample_weight=weights, check_input=False)
            return tree, weights > 0

        jobs = Parallel(n_jobs=self.n_jobs, prefer="threads", return_as="generator")(
            delayed(grow)(int(s)) for s in seeds
        )
        grown = list(track(jobs, self.n_estimators, "Growing trees", self.progress))
        self.estimators_ = [tree for tree, _ in grown]
        if self.oob_score:
            self._set_oob(X, y_codes.astype(np.intp), codes, [seen for _, seen in grown])
        return self

    def _set_oob(
        self, X: np.ndarray, y: np.ndarray, codes: np.ndarray | None, seen: list[np.ndarray]
    ) -> None:
        n, k = len(y), len(self.classes_)
        raw, honest = np.zeros((n, k)), np.zeros((n, k))
        for tree, in_bag in zip(self.estimators_, seen, strict=True):
            out = np.flatnonzero(~in_bag)
            if not len(out):
                continue
            proba = _predict_rows(tree, X, out)
            raw[out] += proba
            if codes is None:
                honest[out] += proba
            else:
                group_seen = np.bincount(codes, weights=in_bag, minlength=codes.max() + 1) > 0
                clean = ~group_seen[codes[out]]
                honest[out[clean]] += proba[clean]
        self.oob_score_ = _judged_accuracy(raw, y)
        self.honest_oob_score_ = _judged_accuracy(honest, y)
        self.oob_coverage_ = float(np.mean(honest.sum(axis=1) > 0))
        self.oob_decision_function_ = honest

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        total = np.zeros((len(X), len(self.classes_)))
        for tree in self.estimators_:
            total += tree.predict_proba(X, check_input=False)
        return total / len(self.estimators_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        check_is_fitted(self)
        return np.mean([tree.feature_importances_ for tree in self.estimators_], axis=0)


def _judged_accuracy(votes: np.ndarray, y: np.ndarray) -> float:
    """Accuracy over the rows at least one tree judged; NaN when none was."""
    judged = votes.sum(axis=1) > 0
    if not judged.any():
        return float("nan")
    return float(np.mean(np.argmax(votes[judged], axis=1) == y[judged]))
