"""The study's "polarized" photo as a scikit-learn transformer (the warp itself is
:mod:`.polar_warp`'s)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..basics.errors import SettingsError
from .arrays import check_images, resize_images
from .polar_warp import polar_warp

__all__ = ["PolarWarp", "polar_warp"]


class PolarWarp(TransformerMixin, BaseEstimator):
    """scikit-learn transformer for :func:`polar_warp` (photos in, photos out).

    Parameters
    ----------
    size : int
        The photo is resized to ``size`` x ``size`` and warped to as many radii and angles
        (study: 192).
    half : bool
        Keep only the inner half of the radii, ``size // 2`` x ``size`` (study: 96 x 192).
    """

    def __init__(self, size: int = 192, half: bool = False) -> None:
        self.size = size
        self.half = half

    def fit(self, X: np.ndarray, y: object = None) -> PolarWarp:
        check_images(X)
        if self.size < 2:
            raise SettingsError(f"The polar size must be at least 2 pixels, got {self.size}.")
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return polar_warp(resize_images(check_images(X), self.size), self.size, self.half)
