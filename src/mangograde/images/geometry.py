"""The study's two geometries: resize to N x N, and resize then centre-crop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..errors import MangogradeError, SettingsError


@dataclass(frozen=True)
class Resize:
    """Resize to ``size`` x ``size`` (aspect not kept, bilinear, as the study's cv2 did)."""

    size: int

    def __post_init__(self) -> None:
        if self.size < 1:
            raise SettingsError(f"The resize size must be at least 1 pixel, got {self.size}.")

    @property
    def key(self) -> str:
        return f"resize{self.size}"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    @property
    def decode_size(self) -> tuple[int, int]:
        """Smallest decoded size that loses nothing for this geometry."""
        return (self.size, self.size)

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


Geometry = Resize | ResizeCenterCrop


def resize_for(size: int) -> int:
    """The CNN's decode size for input ``size``: the study resizes to 256 and crops 224."""
    if size < 1:
        raise SettingsError(f"The CNN input size must be at least 1 pixel, got {size}.")
    return round(size * 256 / 224)


def geometry_record(geometry: Geometry) -> dict[str, Any]:
    if isinstance(geometry, Resize):
        return {"kind": "resize", "size": geometry.size}
    return {"kind": "resize-center-crop", "resize": geometry.resize, "crop": geometry.crop}


def read_geometry(record: Any) -> Geometry | None:
    """The geometry a bundle or an export records (sides of 8 to 4,096 pixels), or None."""
    try:
        if record.get("kind") == "resize":
            geometry: Geometry = Resize(int(record["size"]))
        elif record.get("kind") == "resize-center-crop":
            geometry = ResizeCenterCrop(int(record["resize"]), int(record["crop"]))
        else:
            return None
    except (AttributeError, KeyError, TypeError, ValueError, MangogradeError):
        return None
    return geometry if all(8 <= side <= 4096 for side in geometry.shape[:2]) else None
