"""Photos as pixel vectors: resize to N x N and flatten RGB 0-255, in float32."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..basics.errors import SettingsError
from .arrays import check_images, pixel_vectors, resize_images

__all__ = ["PixelVectors", "check_images", "resize_images"]


class PixelVectors(TransformerMixin, BaseEstimator):
    """Flatten ``(n, H, W, 3)`` uint8 photos into ``(n, size * size * 3)`` vectors, 0-255.

    Parameters
    ----------
    size : int or None
        Resize to ``size`` x ``size`` first; None keeps the photos' own size.
    dtype : {"float32", "float64", "uint8"}
        float32 halves the memory of the study's 110,592-wide vectors and every
        scikit-learn model here accepts it; uint8 (the forest's input) quarters it.

    Examples
    --------
    >>> import numpy as np
    >>> PixelVectors(size=8).fit_transform(np.zeros((2, 16, 16, 3), np.uint8)).shape
    (2, 192)
    """

    def __init__(self, size: int | None = None, dtype: str = "float32") -> None:
        self.size = size
        self.dtype = dtype

    def fit(self, X: np.ndarray, y: object = None) -> PixelVectors:
        images = check_images(X)
        if self.dtype not in ("float32", "float64", "uint8"):
            raise SettingsError(f"dtype must be float32, float64 or uint8, got {self.dtype!r}.")
        if self.size is not None and self.size < 1:
            raise SettingsError(f"size must be a positive number of pixels, got {self.size}.")
        self.image_shape_ = (self.size, self.size, 3) if self.size else images.shape[1:]
        self.n_features_out_ = int(np.prod(self.image_shape_))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return pixel_vectors(X, self.size, self.image_shape_, self.dtype)
