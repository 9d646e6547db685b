"""The photo as the not-a-fruit check's general image space reads it (numpy and Pillow, so
a run and its export see the same pixels); see :mod:`mangograde.evaluation.not_a_fruit`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

SIZE = 64  # the photo's side in the general space
BLOCKS = 3  # Lite0's stem and first blocks: 40 channels

Embed = Callable[[np.ndarray], np.ndarray]  # decoded photos (n, H, W, 3) -> (n, 40)


def shrunk(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Decoded photos ``(n, H, W, 3)`` uint8 as the general space reads them: ``(n, 3,
    size, size)`` float32 in [-1, 1] (Lite0's input range), shrunk with Pillow, so a run
    and its export see the same pixels."""
    out = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        small = Image.fromarray(np.asarray(image, dtype=np.uint8))
        out[i] = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR))
    return np.ascontiguousarray((out / 127.5 - 1.0).transpose(0, 3, 1, 2))
