"""Stratified, group-aware splits that give the same folds for the same seed anywhere.

A group (one fruit photographed several times) never straddles two folds or two parts.
Without groups every photo is its own group. Splits depend only on the dataset's order,
its labels and groups, and the seed; the dataset order is fixed by ``load_dataset``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..basics.errors import DatasetError


def _groups_or_singletons(labels: np.ndarray, groups: Sequence[str] | None) -> np.ndarray:
    if groups is None:
        return np.arange(len(labels))
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups given for {len(labels)} labels")
    _, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    return codes


def kfold(
    labels: Sequence[int] | np.ndarray,
    k: int,
    groups: Sequence[str] | None = None,
    seed: int = 0,
    grades: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified (train, test) index pairs; groups stay whole.

    The folds are those of scikit-learn's ``StratifiedGroupKFold(k, shuffle=True,
    random_state=seed)`` (scikit-learn 1.8 or later, whose shuffling stratifies) on
    photos in dataset order, so a plain scikit-learn script using the same order and
    seed scores the same folds. ``grades`` only names grades in error messages.
    """
    y = np.asarray(labels)
    codes = _groups_or_singletons(y, groups)
    if k < 2:
        raise DatasetError(f"--cv {k}: cross-validation needs at least 2 folds.")
    n_groups = len(np.unique(codes))
    if k > n_groups:
        raise DatasetError(
            f"--cv {k} asks for more folds than there are fruit groups ({n_groups}). "
            "Use fewer folds."
        )
    thin = []
    for grade in np.unique(y):
        n_fruit = len(np.unique(codes[y == grade]))
        if n_fruit < k:
            name = grades[grade] if grades is not None else f"index {grade}"
            thin.append(f"grade {name} has {n_fruit} (fruit groups or photos)")
    if thin:
        raise DatasetError(
            f"--cv {k} needs at least {k} fruits of every grade, or some folds would test "
            f"none of it: {'; '.join(thin)}. Use fewer folds or add photos."
        )
    from sklearn.model_selection import StratifiedGroupKFold  # slow import, needed only here

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # scikit-learn warns about thin classes in photos, not groups: checked above instead.
        warnings.simplefilter("ignore", UserWarning)
        return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y, codes)]


def fold_of_each(splits: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Fold number of every photo (the fold in which it is held out)."""
    folds = np.full(n, -1, dtype=np.int64)
    for number, (_, test) in enumerate(splits):
        folds[test] = number
    return folds


def holdout(
    labels: Sequence[int] | np.ndarray,
    fraction: float,
    groups: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split into (kept, held out) with about ``fraction`` of every grade held out.

    Groups are shuffled with the seed and taken in turn; a group joins the held-out
    part when that brings the grades' counts closer to their targets.
    """
    y = np.asarray(labels)
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"A split fraction must lie between 0 and 1, got {fraction}.")
    codes = _groups_or_singletons(y, groups)
    n_grades = int(y.max()) + 1 if len(y) else 0
    unique_codes = np.unique(codes)
    per_group = np.zeros((len(unique_codes), n_grades), dtype=np.int64)
    np.add.at(per_group, (np.searchsorted(unique_codes, codes), y), 1)
    # Random order, not largest first: the held-out part must get its fair share of
    # single-photo and many-photo fruits alike.
    order = np.random.default_rng(seed).permutation(len(unique_codes))
    target = fraction * per_group.sum(axis=0)
    held = np.zeros(n_grades)
    chosen = np.zeros(len(unique_codes), dtype=bool)
    for g in order:
        with_it = np.abs(held + per_group[g] - target).sum()
        if with_it < np.abs(held - target).sum():
            held += per_group[g]
            chosen[g] = True
    if not chosen.any() or chosen.all():
        raise DatasetError(
            f"Cannot hold out {fraction:.0%} of {len(unique_codes)} groups: one part would be "
            "empty. Use a different fraction or more photos."
        )
    held_mask = chosen[np.searchsorted(unique_codes, codes)]
    return np.flatnonzero(~held_mask), np.flatnonzero(held_mask)


def train_val_test(
    labels: Sequence[int] | np.ndarray,
    val_fraction: float,
    test_fraction: float = 0.0,
    groups: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train, validation and (possibly empty) test parts, each stratified."""
    if val_fraction <= 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise DatasetError(
            f"Validation ({val_fraction}) and test ({test_fraction}) fractions must be "
            "positive (test may be 0) and add up to less than 1."
        )
    y = np.asarray(labels)
    rest, test = (np.arange(len(y)), np.array([], dtype=np.int64))
    if test_fraction > 0:
        rest, test = holdout(y, test_fraction, groups, seed)
    sub_groups = None if groups is None else [groups[i] for i in rest]
    val_share = val_fraction / (1.0 - test_fraction)
    train_pos, val_pos = holdout(y[rest], val_share, sub_groups, seed + 1)
    return rest[train_pos], rest[val_pos], test
