"""The study's "polarized" photo: warped to polar coordinates about its centre."""

from __future__ import annotations

import functools

import numpy as np
from numba import njit
from sklearn.base import BaseEstimator, TransformerMixin

from ..basics.errors import SettingsError
from .pixels import check_images, resize_images


@functools.lru_cache(maxsize=8)
def _sampling(height: int, width: int, size: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear sampling of a polar grid: four source pixels and weights per output pixel.

    Output row ``i`` is radius ``i / size`` of the half-diagonal (so every pixel of the
    photo is covered); column ``j`` is angle ``2 pi j / size``. Points outside the photo
    get weight 0 (black).
    """
    radius = np.arange(rows) * (np.hypot(height, width) / 2) / size
    angle = np.arange(size) * (2 * np.pi / size)
    y = ((height - 1) / 2 + radius[:, None] * np.sin(angle)[None, :]).ravel()
    x = ((width - 1) / 2 + radius[:, None] * np.cos(angle)[None, :]).ravel()
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    indices, weights = [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                      (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):  # fmt: skip
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        indices.append(np.where(inside, yy * width + xx, 0))
        weights.append(np.where(inside, w, 0.0).astype(np.float32))
    return np.stack(indices), np.stack(weights)


@njit(cache=True, nogil=True)
def _warp(flat: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    for photo in range(flat.shape[0]):
        for p in range(indices.shape[1]):
            for c in range(3):
                value = 0.0
                for corner in range(4):
                    value += weights[corner, p] * flat[photo, indices[corner, p], c]
                out[photo, p, c] = min(255, int(value + 0.5))


def polar_warp(images: np.ndarray, size: int, half: bool = False) -> np.ndarray:
    """Warp ``(n, H, W, 3)`` uint8 photos to ``(n, size, size, 3)`` polar images.

    Rows are radii from the centre outwards, columns are angles. With ``half`` only the
    inner half of the radii is kept, ``(n, size // 2, size, 3)``: the centred fruit.
    """
    images = check_images(images)
    n, height, width, _ = images.shape
    rows = size // 2 if half else size
    indices, weights = _sampling(height, width, size, rows)
    out = np.empty((n, rows * size, 3), dtype=np.uint8)
    _warp(np.ascontiguousarray(images).reshape(n, height * width, 3), indices, weights, out)
    return out.reshape(n, rows, size, 3)


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
