"""PCA + SVC, the group-bootstrap forest and the photo-level classifier."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from mangograde.models import registry
from mangograde.models.classical import ReducedForest
from mangograde.models.forest import GroupForestClassifier
from mangograde.models.svm import PCASVC, GramPCA


@parametrize_with_checks(
    [GroupForestClassifier(n_estimators=20, random_state=0), PCASVC(n_components=2), GramPCA(2)]
)
def test_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


def test_gram_pca_equals_scikit_learn_pca_up_to_sign():
    X = np.random.default_rng(0).normal(size=(30, 200)).astype(np.float32)
    X[:, :5] *= 10
    ours = GramPCA(5).fit(X)
    theirs = PCA(5, svd_solver="full").fit(X.astype(np.float64))
    np.testing.assert_allclose(
        np.abs(ours.transform(X)), np.abs(theirs.transform(X)), rtol=1e-3, atol=1e-2
    )
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-3)


def test_gram_pca_warns_and_keeps_what_the_data_allows():
    X = np.random.default_rng(0).random((10, 50))
    with pytest.warns(UserWarning, match="PCA keeps 9 components, not the 500 asked"):
        pca = GramPCA(500).fit(X)
    assert pca.n_components_ == 9


def separable(n_per: int = 12, d: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n_per)
    X = rng.normal(size=(len(y), d)) + y[:, None] * 1.5
    return X.astype(np.float32), y


def test_pca_svc_learns_and_gives_probabilities():
    X, y = separable()
    model = PCASVC(n_components=5, C=1.5, random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert model.score(X, y) > 0.9


def siblings(n_fruit: int = 30, copies: int = 8, seed: int = 0):
    """Each fruit's copies are near-identical; grades are pure noise across fruits."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_fruit, 20))
    y_fruit = rng.integers(0, 3, n_fruit)
    X = np.repeat(base, copies, axis=0) + rng.normal(scale=0.01, size=(n_fruit * copies, 20))
    return X.astype(np.float32), np.repeat(y_fruit, copies), np.repeat(np.arange(n_fruit), copies)


def test_honest_oob_is_below_raw_oob_when_siblings_leak():
    X, y, groups = siblings()
    forest = GroupForestClassifier(60, oob_score=True, random_state=0).fit(X, y, groups)
    # Raw OOB also judges rows by trees that saw their near-identical siblings.
    assert forest.oob_score_ > 0.8
    # Honest OOB sees only other fruits, whose grades carry no signal here: near chance.
    assert forest.honest_oob_score_ < 0.6
    assert forest.oob_score_ - forest.honest_oob_score_ > 0.3
    assert forest.oob_coverage_ == 1.0


def test_forest_without_groups_reports_equal_raw_and_honest_oob():
    X, y = separable()
    forest = GroupForestClassifier(30, oob_score=True, random_state=0).fit(X, y)
    assert forest.oob_score_ == forest.honest_oob_score_ > 0.8


def test_forest_is_deterministic_for_a_seed_and_checks_max_samples():
    X, y = separable()
    a = GroupForestClassifier(10, max_samples=0.5, random_state=3).fit(X, y).predict_proba(X)
    b = GroupForestClassifier(10, max_samples=0.5, random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="max_samples"):
        GroupForestClassifier(3, max_samples=1.5).fit(X, y)


@pytest.mark.parametrize("reduction", [{"selection_scaling": 1.0}, {"n_components": 4}])
def test_reduced_forest_fits_on_fewer_features(reduction):
    X, y = separable()
    model = ReducedForest(GroupForestClassifier(20, random_state=0), **reduction).fit(X, y)
    assert model.n_features_used_ < X.shape[1]
    assert model.score(X, y) > 0.9


def tiny_photos(n_per: int = 8, size: int = 16, seed: int = 0):
    """Grade = brightness of the photo, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], n_per)
    images = rng.integers(0, 60, (len(y), size, size, 3)) + (y * 80)[:, None, None, None]
    return images.astype(np.uint8), y


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("svm-study", ["features.size=16", "n_components=6"]),
        ("svm-raw", ["features.size=16", "n_components=6"]),
        ("rf-study", ["features.size=16", "n_estimators=15", "oob_score=true"]),
    ],
)
def test_photo_classifiers_fit_predict_and_give_probabilities(preset, overrides):
    images, y = tiny_photos()
    settings = registry.resolve(preset_name=preset, assignments=overrides)
    model = registry.build_model(settings).fit(images, y, groups=np.arange(len(y)) // 2)
    proba = model.predict_proba(images)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert np.mean(model.predict(images) == y) > 0.9
    if preset == "rf-study":
        forest = model.classifier_
        assert forest.n_features_in_ == 16 * 16 * 3
        assert len(model.classifier_.oob_decision_function_) == 8 * len(y)  # x8 copies


def test_flip_rotate_copies_as_permutations_train_the_same_forest_as_stored_copies():
    from mangograde.features.expand import expand_images, pixel_permutations

    images, y = tiny_photos(n_per=5, size=6)
    groups = np.arange(len(y)) // 2
    expanded, source = expand_images(images, "flip-rotate")
    flat = expanded.reshape(len(expanded), -1)
    stored = GroupForestClassifier(8, oob_score=True, random_state=1)
    stored.fit(flat, y[source], groups[source])
    virtual = GroupForestClassifier(8, oob_score=True, random_state=1)
    perms = pixel_permutations((6, 6, 3), "flip-rotate")
    virtual.fit(images.reshape(len(images), -1), y, groups, feature_permutations=perms)
    np.testing.assert_array_equal(virtual.tree_feature_, stored.tree_feature_)
    np.testing.assert_array_equal(virtual.predict_proba(flat), stored.predict_proba(flat))
    assert virtual.honest_oob_score_ == stored.honest_oob_score_


def test_forest_splits_uint8_pixels_exactly_and_bins_other_numbers():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 4)).astype(np.uint8)
    y = (X[:, 2] > 100).astype(int)
    forest = GroupForestClassifier(1, max_features=None, max_samples=1.0, random_state=0)
    forest.fit(X, y)
    root = forest.tree_threshold_[0]
    assert forest.tree_feature_[0] == 2
    assert X[y == 0, 2].max() <= root < X[y == 1, 2].min()
    as_float = GroupForestClassifier(5, random_state=0).fit(X.astype(np.float64) / 7, y)
    assert as_float.score(X.astype(np.float64) / 7, y) > 0.95
