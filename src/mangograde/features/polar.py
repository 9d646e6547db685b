"""The study's "polarized" photo: warped to polar coordinates about its centre."""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import SettingsError
from .pixels import check_images, resize_images


@functools.lru_cache(maxsize=8)
def _sampling(height: int, width: int, size: int, rows: int) -> sparse.csr_matrix:
    """Bilinear sampling of a polar grid as a sparse (rows * size, height * width) matrix.

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
    out_index = np.arange(len(y))
    matrix = sparse.csr_matrix((len(y), height * width), dtype=np.float32)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                      (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):  # fmt: skip
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width) & (w > 0)
        matrix = matrix + sparse.csr_matrix(
            (w[inside].astype(np.float32), (out_index[inside], (yy * width + xx)[inside])),
            shape=matrix.shape,
        )
    return matrix


def polar_warp(images: np.ndarray, size: int, half: bool = False) -> np.ndarray:
    """Warp ``(n, H, W, 3)`` uint8 photos to ``(n, size, size, 3)`` polar images.

    Rows are radii from the centre outwards, columns are angles. With ``half`` only the
    inner half of the radii is kept, ``(n, size // 2, size, 3)``: the centred fruit.
    """
    images = check_images(images)
    n, height, width, _ = images.shape
    rows = size // 2 if half else size
    matrix = _sampling(height, width, size, rows)
    # One sparse product warps every photo: pixels down, (photo, channel) across.
    columns = images.transpose(1, 2, 0, 3).reshape(height * width, n * 3).astype(np.float32)
    warped = matrix @ columns
    warped = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    return warped.reshape(rows, size, n, 3).transpose(2, 0, 1, 3).copy()


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
