"""Pixel vectors, the polar warp and flip / rotate expansion."""

from __future__ import annotations

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.features.expand import expand_features, expand_images
from mangograde.features.pixels import PixelVectors
from mangograde.features.polar import PolarWarp, polar_warp


def photos(n: int = 4, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_pixel_vectors_are_float32_rows_of_resized_rgb():
    images = photos(3, 16)
    vectors = PixelVectors(size=8).fit_transform(images)
    assert vectors.shape == (3, 8 * 8 * 3)
    assert vectors.dtype == np.float32
    assert vectors.min() >= 0 and vectors.max() <= 255
    same = PixelVectors().fit_transform(images)
    np.testing.assert_array_equal(same[1], images[1].ravel().astype(np.float32))


def test_pixel_vectors_refuse_photos_of_another_size_or_kind():
    fitted = PixelVectors().fit(photos(2, 16))
    with pytest.raises(ValueError, match="do not match"):
        fitted.transform(photos(2, 8))
    with pytest.raises(ValueError, match="uint8"):
        fitted.transform(photos(2, 16).astype(np.float64))
    with pytest.raises(ValueError, match="RGB"):
        fitted.transform(np.zeros((2, 16, 16), np.uint8))


def ring(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    image = np.zeros((1, size, size, 3), np.uint8)
    image[0, np.abs(distance - radius) < 1.0] = 255
    return image


def test_polar_warp_turns_a_centred_ring_into_one_bright_row():
    size, radius = 64, 12.0
    warped = polar_warp(ring(size, radius), size)[0, :, :, 0].astype(float)
    expected_row = radius / (np.hypot(size, size) / 2) * size
    brightest = warped.mean(axis=1).argmax()
    assert abs(brightest - expected_row) <= 1
    assert warped[brightest].min() > 100  # bright at every angle


def test_polar_warp_puts_the_left_half_of_a_photo_in_the_middle_angles():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, :, :16] = 200
    warped = polar_warp(image, 32)[0, 1:10, :, 0]  # inner radii, all angles
    angles = np.arange(32) * 360 / 32
    left = (angles > 100) & (angles < 260)
    right = (angles < 80) | (angles > 280)
    assert warped[:, left].mean() > 150 and warped[:, right].mean() < 50


def test_polar_half_keeps_the_inner_radii_in_the_study_shape():
    images = photos(2, 192)
    half = PolarWarp(192, half=True).fit_transform(images)
    full = PolarWarp(192).fit_transform(images)
    assert half.shape == (2, 96, 192, 3) and half.dtype == np.uint8
    np.testing.assert_array_equal(half, full[:, :96])


@pytest.mark.parametrize(("mode", "copies"), [("none", 1), ("flip", 2), ("rotate", 4),
                                                ("flip-rotate", 8)])  # fmt: skip
def test_expansion_makes_distinct_copies_tied_to_their_photo(mode, copies):
    images = photos(3, 8)
    expanded, source = expand_images(images, mode)
    assert len(expanded) == 3 * copies
    np.testing.assert_array_equal(source, np.tile(np.arange(3), copies))
    for i in range(len(expanded)):
        original = images[source[i]]
        assert sorted(expanded[i].ravel()) == sorted(original.ravel())
    distinct = {expanded[i].tobytes() for i in range(len(expanded)) if source[i] == 0}
    assert len(distinct) == copies


def test_expanded_features_match_features_of_expanded_photos():
    images = photos(5, 8)
    vectors = PixelVectors().fit(images)
    direct, source = expand_features(images, "flip-rotate", vectors.transform, chunk=2)
    expanded, source2 = expand_images(images, "flip-rotate")
    np.testing.assert_array_equal(direct, vectors.transform(expanded))
    np.testing.assert_array_equal(source, source2)


def test_rotation_needs_square_photos_and_modes_are_named():
    wide = np.zeros((2, 8, 12, 3), np.uint8)
    with pytest.raises(SettingsError, match="square"):
        expand_images(wide, "rotate")
    with pytest.raises(SettingsError, match="flip-rotate"):
        expand_images(photos(), "mirror")
