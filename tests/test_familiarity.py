"""The familiarity model: a photo's distance from the training photos in the model's own
features, and the threshold set on photos it never saw."""

from __future__ import annotations

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.evaluation.familiarity import FamiliarityModel, auroc, threshold_for


def _features(n: int, d: int = 20, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 2.0, d)  # a common direction, as real features have
    return base + rng.normal(size=(n, d)) * 0.3 + shift * rng.normal(size=d)


def test_other_photos_score_far_and_the_threshold_flags_about_the_quantile():
    train, held, other = _features(300), _features(2000, seed=1), _features(200, shift=1.5, seed=2)
    model = FamiliarityModel.fit(train)
    model = model.with_threshold(model.score(_features(500, seed=3)), 0.99)
    held_scores, other_scores = model.score(held), model.score(other)
    assert auroc(held_scores, other_scores) > 0.99
    assert 0.003 < model.flags(held).mean() < 0.03
    assert model.flags(other).mean() > 0.9
    assert auroc(held_scores, model.score(_features(200, seed=4))) == pytest.approx(0.5, abs=0.08)


def test_scores_ignore_a_cameras_gain_and_flag_broken_features():
    train = _features(100)
    model = FamiliarityModel.fit(train)
    photo = _features(3, seed=5)
    np.testing.assert_allclose(model.score(photo * 3.0), model.score(photo))
    photo[1, 4] = np.nan
    scores = model.score(photo)
    assert np.isinf(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    with pytest.raises(SettingsError, match="no threshold"):
        model.flags(photo)
    assert model.with_threshold(scores, 0.99).flags(photo)[1]


def test_many_more_features_than_photos_are_projected_first():
    train = _features(40, d=5000)
    model = FamiliarityModel.fit(train)
    assert model.components.shape == (39, 5000) and model.precision.shape == (39, 39)
    assert auroc(model.score(_features(50, d=5000, seed=1)),
                 model.score(_features(50, d=5000, shift=1.0, seed=2))) > 0.95  # fmt: skip


def test_stored_as_plain_arrays_and_read_back():
    model = FamiliarityModel.fit(_features(60)).with_threshold(np.arange(100.0), 0.9)
    again = FamiliarityModel.from_arrays(model.arrays("fold0_"), "fold0_")
    assert again.threshold == pytest.approx(89.1)
    photo = _features(5, seed=9)
    np.testing.assert_array_equal(again.score(photo), model.score(photo))
    assert (
        FamiliarityModel.from_arrays(FamiliarityModel.fit(_features(9)).arrays()).threshold is None
    )
    broken = model.arrays()
    broken["precision"] = broken["precision"][:2]
    with pytest.raises(SettingsError, match="do not fit together"):
        FamiliarityModel.from_arrays(broken)


def test_bad_input_is_named():
    with pytest.raises(SettingsError, match="at least 3 training photos"):
        FamiliarityModel.fit(_features(2))
    with pytest.raises(SettingsError, match="familiar.quantile must be from 0.5"):
        threshold_for(np.arange(10.0), 1.5)
    with pytest.raises(SettingsError, match="No finite"):
        threshold_for(np.array([np.inf, np.nan]), 0.99)
