"""Decoding, orientation, resize/crop and the decoded-photo cache."""

from .cache import CACHE_ENV, CACHE_MAX_ENV, ImageCache, default_cache_dir, parse_size
from .decode import (
    DEFAULT_MAX_PIXELS,
    BadImage,
    ImageDecodeError,
    decode,
    open_photo,
    photo_size,
    set_max_pixels,
    to_rgb,
)
from .geometry import FruitCrop, Geometry, Resize, ResizeCenterCrop
from .loader import LoadedImages, bad_images_message, load_dataset_images, load_images

__all__ = [
    "CACHE_ENV",
    "CACHE_MAX_ENV",
    "DEFAULT_MAX_PIXELS",
    "BadImage",
    "FruitCrop",
    "Geometry",
    "ImageCache",
    "ImageDecodeError",
    "LoadedImages",
    "Resize",
    "ResizeCenterCrop",
    "bad_images_message",
    "decode",
    "default_cache_dir",
    "load_dataset_images",
    "load_images",
    "open_photo",
    "parse_size",
    "photo_size",
    "set_max_pixels",
    "to_rgb",
]
