"""An explanation as a PNG: the photo as the model saw it, its supporting regions marked."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from ..report.figures import lime_shading


def heat_png(explanation: Any, side: int = 320) -> bytes:
    """As the command line draws it: LIME's supporting regions green, a Grad-CAM map
    yellow-to-red over the regions that drove the grade; the rest dimmed."""
    if explanation.method == "lime":
        blended = 255 * lime_shading(explanation.image, explanation.mask)
    else:
        image = explanation.image.astype(np.float32)
        heat = np.asarray(explanation.heat, dtype=np.float32)
        scale = float(np.abs(heat).max()) or 1.0
        weight = np.clip(heat / scale, 0.0, 1.0)[..., None]
        warm = np.stack([np.full_like(weight[..., 0], 255), 230 * (1 - weight[..., 0]),
                         np.zeros_like(weight[..., 0])], axis=-1)  # fmt: skip
        blended = image * (1 - 0.6 * weight) + warm * 0.6 * weight
        blended *= np.where(weight > 0.05, 1.0, 0.75)  # dim what does not support it
    picture = Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))
    if max(picture.size) < side:
        factor = side / max(picture.size)
        size = (round(picture.width * factor), round(picture.height * factor))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
