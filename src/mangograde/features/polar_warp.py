"""The study's polar warp as a plain function: numpy (and Numba where it is installed,
for speed), so that an export grades polar photos without scikit-learn or Numba.

Both paths give the same bytes: each output pixel is the sum, in float64 and corner by
corner, of four float32 products of a weight and a pixel, rounded half up.
"""

from __future__ import annotations

import functools

import numpy as np

from .arrays import check_images

try:
    from numba import njit
except ImportError:  # the slim [grade] install: the numpy path below
    njit = None


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


def _warp_numba(
    flat: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    for photo in range(flat.shape[0]):
        for p in range(indices.shape[1]):
            for c in range(3):
                value = 0.0
                for corner in range(4):
                    value += weights[corner, p] * flat[photo, indices[corner, p], c]
                out[photo, p, c] = min(255, int(value + 0.5))


def _warp_numpy(
    flat: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray
) -> None:
    """:func:`_warp_numba`'s numbers with numpy: the same products, summed in its order."""
    for photo in range(flat.shape[0]):
        value = np.zeros(out.shape[1:], np.float64)
        for corner in range(4):
            value += weights[corner][:, None] * flat[photo, indices[corner]]
        out[photo] = np.minimum(255, np.floor(value + 0.5)).astype(np.uint8)


_warp = _warp_numpy if njit is None else njit(cache=True, nogil=True)(_warp_numba)


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
