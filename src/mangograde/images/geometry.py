"""How a photo becomes an N x N array: the study's resize (and centre crop), or a square
around the fruit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..basics.errors import MangogradeError, SettingsError


class _Square:
    """A geometry whose arrays are ``size`` x ``size``."""

    size: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    @property
    def decode_size(self) -> tuple[int, int]:
        """Smallest decoded size that loses nothing for this geometry."""
        return (self.size, self.size)


@dataclass(frozen=True)
class Resize(_Square):
    """Resize to ``size`` x ``size`` (aspect not kept, bilinear, as the study's cv2 did)."""

    size: int

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SettingsError(f"The resize size must be at least 1 pixel, got {self.size}.")

    @property
    def key(self) -> str:
        return f"resize{self.size}"

    def apply(self, image: Image.Image) -> Image.Image:
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class ResizeCenterCrop:
    """Resize to ``resize`` x ``resize`` then keep the central ``crop`` x ``crop``.

    The study's CNN input: the fruit is nearly always centred, so the crop drops the
    crate edges and hands at the border.
    """

    resize: int = 256
    crop: int = 224

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise SettingsError(
                f"The crop ({self.crop}) must be at least 1 pixel and at most the resize size "
                f"({self.resize})."
            )

    @property
    def key(self) -> str:
        return f"resize{self.resize}-crop{self.crop}"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.crop, self.crop, 3)

    @property
    def decode_size(self) -> tuple[int, int]:
        return (self.resize, self.resize)

    def apply(self, image: Image.Image) -> Image.Image:
        image = image.resize((self.resize, self.resize), Image.Resampling.BILINEAR)
        left = (self.resize - self.crop) // 2
        return image.crop((left, left, left + self.crop, left + self.crop))


@dataclass(frozen=True)
class FruitCrop(_Square):
    """A square around the fruit, resized to ``size`` x ``size``: the fruit keeps its shape
    and fills ``fill`` of the side, where a plain resize squashes a wide photo and leaves
    background around the fruit.

    The fruit is what is coloured (saturation above 0.2) or dark on the pale background,
    found on a 64-pixel thumbnail; without one (under 2% of the photo), the whole photo.
    """

    size: int
    fill: float = 0.85

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SettingsError(f"The crop size must be at least 1 pixel, got {self.size}.")
        if not 0.3 <= self.fill <= 1:
            raise SettingsError(f"The fruit's share of the crop must be 0.3 to 1, not {self.fill}.")

    @property
    def key(self) -> str:
        return f"fruit{self.size}-{self.fill:g}"

    def apply(self, image: Image.Image) -> Image.Image:
        left, top, right, bottom = fruit_box(image)
        side = max(right - left, bottom - top) / self.fill
        middle_x, middle_y = (left + right) / 2, (top + bottom) / 2
        box = [middle_x - side / 2, middle_y - side / 2, middle_x + side / 2, middle_y + side / 2]
        # Never beyond the photo (padding would add dark edges, and dark is a blemish's colour).
        width, height = image.size
        box = [max(0.0, box[0]), max(0.0, box[1]), min(width, box[2]), min(height, box[3])]
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=tuple(box))


def fruit_box(image: Image.Image) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the fruit in ``image``'s pixels."""
    width, height = image.size
    scale = 64 / max(width, height)
    thumb = image.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    hsv = np.asarray(thumb.convert("HSV"), dtype=np.float32) / 255
    fruit = (hsv[..., 1] > 0.2) | (hsv[..., 2] < 0.25)
    if fruit.mean() < 0.02:
        return 0, 0, width, height
    rows = np.flatnonzero(fruit.mean(axis=1) > 0.1)
    columns = np.flatnonzero(fruit.mean(axis=0) > 0.1)
    if not len(rows) or not len(columns):
        return 0, 0, width, height
    return (
        int(columns[0] / scale),
        int(rows[0] / scale),
        min(width, int(np.ceil((columns[-1] + 1) / scale))),
        min(height, int(np.ceil((rows[-1] + 1) / scale))),
    )


Geometry = Resize | ResizeCenterCrop | FruitCrop


def resize_for(size: int) -> int:
    """The CNN's decode size for input ``size``: the study resizes to 256 and crops 224."""
    if size < 1:
        raise SettingsError(f"The CNN input size must be at least 1 pixel, got {size}.")
    return round(size * 256 / 224)


def geometry_record(geometry: Geometry) -> dict[str, Any]:
    if isinstance(geometry, Resize):
        return {"kind": "resize", "size": geometry.size}
    if isinstance(geometry, FruitCrop):
        return {"kind": "fruit-crop", "size": geometry.size, "fill": geometry.fill}
    return {"kind": "resize-center-crop", "resize": geometry.resize, "crop": geometry.crop}


def read_geometry(record: Any) -> Geometry | None:
    """The geometry a bundle or an export records (sides of 8 to 4,096 pixels), or None."""
    try:
        if record.get("kind") == "resize":
            geometry: Geometry = Resize(int(record["size"]))
        elif record.get("kind") == "fruit-crop":
            geometry = FruitCrop(int(record["size"]), float(record["fill"]))
        elif record.get("kind") == "resize-center-crop":
            geometry = ResizeCenterCrop(int(record["resize"]), int(record["crop"]))
        else:
            return None
    except (AttributeError, KeyError, TypeError, ValueError, MangogradeError):
        return None
    return geometry if all(8 <= side <= 4096 for side in geometry.shape[:2]) else None
