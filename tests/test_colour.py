"""Colour, blemish and texture features of the fruit (the best classical preset's input)."""

from __future__ import annotations

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.features.colour import ColourTexture
from mangograde.models.classical import colour_vote


def mango(seed: int, blemishes: int = 0, size: int = 64) -> np.ndarray:
    """A yellow-orange ellipse on a pale crate, with ``blemishes`` dark spots on it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    photo = np.full((size, size, 3), 225, np.uint8) + rng.integers(0, 10, (size, size, 1)).astype(
        np.uint8
    )
    inside = ((yy - size / 2) / (size * 0.3)) ** 2 + ((xx - size / 2) / (size * 0.4)) ** 2 < 1
    photo[inside] = (215 + rng.integers(-10, 10), 160 + rng.integers(-10, 10), 40)
    for _ in range(blemishes):
        cy, cx = rng.integers(int(size * 0.4), int(size * 0.6), 2)
        spot = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(4, 12)
        photo[spot & inside] = (60, 40, 20)
    return photo


def test_features_are_float32_rows_independent_of_batching():
    photos = np.stack([mango(i, blemishes=i % 3) for i in range(7)])
    one_go = ColourTexture(size=64, batch=100).fit_transform(photos)
    batched = ColourTexture(size=64, batch=3).fit_transform(photos)
    assert one_go.dtype == np.float32 and one_go.shape[0] == 7
    assert np.isfinite(one_go).all()
    np.testing.assert_allclose(one_go, batched, rtol=1e-5, atol=1e-6)


def test_a_blemished_fruit_gets_different_features_from_a_clean_one():
    features = ColourTexture(size=64).fit(np.stack([mango(0)]))
    clean, spotted = features.transform(np.stack([mango(0), mango(0, blemishes=3)]))
    assert np.abs(clean - spotted).max() > 0.05


def test_the_colour_vote_tells_clean_from_blemished_fruit():
    photos = np.stack([mango(i, blemishes=(i % 2) * 3) for i in range(40)])
    y = np.arange(40) % 2
    features = ColourTexture(size=64).fit_transform(photos)
    model = colour_vote(n_estimators=30, n_jobs=1).fit(features[:30], y[:30])
    assert model.score(features[30:], y[30:]) == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [({"size": 8}, "size"), ({"scales": ()}, "scales"), ({"saturation": 2.0}, "saturation")],
)
def test_bad_settings_are_named(params, message):
    with pytest.raises(SettingsError, match=message):
        ColourTexture(**params).fit(np.stack([mango(0)]))
