"""Photo arrays as every feature reads them: the shape check and the resize.

Numpy and Pillow only, so that an export's grader (which has no scikit-learn) computes
features with the very code a run computed them with.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


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


def pixel_vectors(
    images: np.ndarray, size: int | None, image_shape: tuple[int, ...], dtype: str
) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 photos as ``(n, prod(image_shape))`` vectors of ``dtype``,
    resized to ``size`` x ``size`` first (None: as they are)."""
    images = check_images(images)
    if size:
        images = resize_images(images, size)
    if images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"Photos of shape {images.shape[1:]} do not match the {tuple(image_shape)} "
            "this transformer was fitted on."
        )
    return images.reshape(len(images), -1).astype(dtype)
