"""Photos as pixel vectors: resize to N x N and flatten RGB 0-255, in float32."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin

from ..basics.errors import SettingsError


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Accept ``(n, H, W, 3)`` uint8 photos, as the image cache returns them."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"Expected {what} as an (n, height, width, 3) RGB array, got shape {images.shape}."
        )
    if images.dtype != np.uint8:
        raise ValueError(f"Expected {what} as uint8 (0-255), got {images.dtype}.")
    return images


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize each photo to ``size`` x ``size`` (bilinear); a no-op when already that size."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(resized)
    return out


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
        images = check_images(X)
        if self.size:
            images = resize_images(images, self.size)
        if images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Photos of shape {images.shape[1:]} do not match the {self.image_shape_} "
                "this transformer was fitted on."
            )
        return images.reshape(len(images), -1).astype(self.dtype)
