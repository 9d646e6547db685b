"""Stratified, group-aware, reproducible splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from mangograde.basics.errors import DatasetError
from mangograde.data import fold_of_each, holdout, kfold, train_val_test

PINNED_FOLDS = [0, 0, 1, 1, 2, 2, 2, 2, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2]


def grouped_labels(n_groups: int = 60, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    """Groups of 1-4 photos, each group of one grade, grades unbalanced."""
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g in range(n_groups):
        grade = rng.choice(3, p=[0.2, 0.4, 0.4])
        for _ in range(rng.integers(1, 5)):
            labels.append(grade)
            groups.append(f"fruit{g}")
    return np.array(labels), groups


def test_kfold_keeps_groups_whole_and_tests_every_photo_once():
    y, groups = grouped_labels()
    splits = kfold(y, 5, groups, seed=0)
    folds = fold_of_each(splits, len(y))
    assert (folds >= 0).all()
    for group in set(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        assert len(set(folds[members])) == 1, f"{group} straddles folds"
    for train, test in splits:
        assert not set(train) & set(test)
        assert len(train) + len(test) == len(y)


def test_kfold_is_stratified():
    y, groups = grouped_labels(n_groups=150)
    overall = np.bincount(y) / len(y)
    for _, test in kfold(y, 5, groups, seed=0):
        share = np.bincount(y[test], minlength=3) / len(test)
        assert np.abs(share - overall).max() < 0.08


def test_kfold_same_seed_same_folds_and_matches_sklearn():
    y, groups = grouped_labels()
    a, b = kfold(y, 4, groups, seed=3), kfold(y, 4, groups, seed=3)
    assert all((ta == tb).all() for (_, ta), (_, tb) in zip(a, b, strict=True))
    codes = np.unique(groups, return_inverse=True)[1]
    reference = StratifiedGroupKFold(4, shuffle=True, random_state=3).split(y, y, codes)
    assert all((t == r).all() for (_, t), (_, r) in zip(a, reference, strict=True))
    other = kfold(y, 4, groups, seed=4)
    assert any(set(ta) != set(to) for (_, ta), (_, to) in zip(a, other, strict=True))


def test_kfold_without_groups_treats_photos_alone():
    y = np.repeat([0, 1, 2], 10)
    splits = kfold(y, 5, None, seed=0)
    assert sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(30))
    for _, test in splits:
        assert np.bincount(y[test]).tolist() == [2, 2, 2]


def test_kfold_refuses_impossible_requests():
    y = np.array([0, 0, 1, 1, 1, 1])
    with pytest.raises(DatasetError, match="grade A has 2"):
        kfold(y, 3, grades=["A", "B"])
    with pytest.raises(DatasetError, match="more folds than there are fruit groups"):
        kfold(y, 3, groups=["a", "a", "a", "b", "b", "b"])
    with pytest.raises(DatasetError, match="at least 2 folds"):
        kfold(y, 1)


def test_kfold_counts_fruits_not_photos_per_grade():
    # Grade C: five photos of one fruit. Five folds cannot all test a C fruit.
    y = np.array([0] * 10 + [1] * 10 + [2] * 5)
    groups = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)] + ["c0"] * 5
    with pytest.raises(DatasetError, match="grade C has 1"):
        kfold(y, 5, groups, grades=["A", "B", "C"])


def test_kfold_folds_are_pinned():
    # Same seed, same folds on any machine and any supported scikit-learn: if this
    # changes, every recorded cross-validation result changes with it.
    y = np.array([0, 1, 2] * 8)
    groups = [f"fruit{i // 2}" for i in range(24)]
    folds = fold_of_each(kfold(y, 3, groups, seed=0), len(y)).tolist()
    assert folds == PINNED_FOLDS


def test_holdout_fraction_groups_and_strata():
    y, groups = grouped_labels(n_groups=200)
    kept, held = holdout(y, 0.2, groups, seed=0)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(y)))
    assert abs(len(held) / len(y) - 0.2) < 0.02
    held_groups = {groups[i] for i in held}
    assert not held_groups & {groups[i] for i in kept}
    per_grade = np.bincount(y[held], minlength=3) / np.bincount(y)
    assert np.abs(per_grade - 0.2).max() < 0.04
    again = holdout(y, 0.2, groups, seed=0)[1]
    assert (again == held).all()


def test_train_val_test_parts_are_disjoint_and_cover():
    y, groups = grouped_labels(n_groups=200)
    train, val, test = train_val_test(y, 0.15, 0.15, groups, seed=0)
    parts = [set(train), set(val), set(test)]
    assert sum(len(p) for p in parts) == len(y) and len(set().union(*parts)) == len(y)
    for share in (len(val) / len(y), len(test) / len(y)):
        assert 0.12 < share < 0.18
    group_sets = [{groups[i] for i in p} for p in parts]
    assert not (group_sets[0] & group_sets[1] or group_sets[0] & group_sets[2])


def test_holdout_rejects_bad_fractions():
    with pytest.raises(DatasetError, match="between 0 and 1"):
        holdout(np.array([0, 1, 0, 1]), 1.5)


def test_holdout_takes_small_and_large_groups_alike():
    y, groups = grouped_labels(n_groups=300, seed=2)
    kept, held = holdout(y, 0.2, groups, seed=0)
    sizes = {g: groups.count(g) for g in set(groups)}

    def mean_size(idx):
        return np.mean([sizes[g] for g in {groups[i] for i in idx}])

    assert abs(mean_size(held) - mean_size(kept)) < 0.5


def test_train_val_test_rejects_fractions_that_do_not_fit():
    with pytest.raises(DatasetError, match=r"Validation \(0.6\) and test \(0.5\)"):
        train_val_test(np.array([0, 1] * 10), 0.6, 0.5)
