"""Decode any photo a phone or scanner makes into upright RGB uint8.

Large JPEGs are decoded at a reduced scale (libjpeg's DCT scaling via ``Image.draft``)
when the target is much smaller: a 12 MP photo resized to 256 px needs an eighth of
the pixels, and skipping them is most of the cost of a classical pipeline.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from ..basics.limits import DEFAULT_MAX_PIXELS
from .geometry import Geometry

# Photos between Pillow's warning and error limits are fine; above the error limit they
# are reported as bad. The warning itself would only clutter the output.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

READABLE = "JPEG, PNG, WebP, BMP or TIFF"
# Pillow opens other formats too (GIF, PSD, EPS through Ghostscript...): refused here.
# Phone JPEGs with a multi-picture block open as MPO; some Pillow versions list MPO apart.
Image.init()  # registers every plugin, so ``formats=`` can name WebP and TIFF
FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF") if f in Image.OPEN)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_limit = {"pixels": DEFAULT_MAX_PIXELS}


def set_max_pixels(pixels: int) -> None:
    """Refuse photos that would decode to more than ``pixels`` pixels (``--max-pixels``)."""
    if pixels < 1:
        raise ValueError(f"--max-pixels must be at least 1, got {pixels}.")
    _limit["pixels"] = int(pixels)


def _check_pixels(path: Path, image: Image.Image, reduced: bool) -> None:
    width, height = image.size  # after draft(): what will actually be decoded
    if width * height <= _limit["pixels"]:
        return
    how = "even read at 1/8 scale it" if reduced else f"a {image.format} is decoded whole and"
    raise ImageDecodeError(
        path,
        f"{width} x {height} pixels: {how} would take {width * height * 3 / 2**20:,.0f} MB, "
        f"over --max-pixels {_limit['pixels']:,}. Shrink the photo or raise --max-pixels",
    )


class ImageDecodeError(Exception):
    """A photo that cannot be decoded; ``reason`` is worded for the user.
    ``unsupported``: the file is not in a format mangograde reads (else damaged or too large)."""

    def __init__(self, path: Path, reason: str, unsupported: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason
        self.unsupported = unsupported


@dataclass(frozen=True)
class BadImage:
    """A photo that could not be decoded, and why."""

    path: Path
    reason: str


def _unreadable_reason(path: Path, data: bytes | None = None) -> str:
    if data is None:
        with open(path, "rb") as handle:
            head = handle.read(64)
    else:
        head = data[:64]
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as other:  # format only
            return f"a {other.format} image, which mangograde does not read (use {READABLE})"
    except Exception:
        pass
    if b"ftypheic" in head or b"ftypheix" in head or b"ftypmif1" in head:
        return f"HEIC/HEIF photo: convert it to JPEG first (readable: {READABLE})"
    if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return f"a text file, not a photo (readable: {READABLE})"
    return f"not a photo format mangograde can read (readable: {READABLE})"


def open_photo(path: str | Path, data: bytes | None = None) -> Image.Image:
    """Open a photo lazily (header only), turning Pillow's errors into a clear reason.
    ``data``: the file's bytes (an upload), ``path`` then only names it."""
    path = Path(path)
    try:
        size = path.stat().st_size if data is None else len(data)
    except OSError as exc:
        raise ImageDecodeError(path, f"cannot read the file ({exc.strerror})") from exc
    if size == 0:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    try:
        return Image.open(path if data is None else io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, f"too large to decode safely: {exc} Shrink the photo") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(path, _unreadable_reason(path, data), unsupported=True) from exc
    except Exception as exc:  # a malformed header can raise nearly anything in a plugin
        raise ImageDecodeError(path, f"truncated or corrupt photo ({exc})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB uint8 from CMYK, grayscale, palette, alpha, 16-bit or float images."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(image, dtype=np.float32) / 257.0  # 65535 -> 255
        return Image.fromarray(np.clip(gray + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)).convert(
            "RGB"
        )
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def decode(
    path: str | Path, geometry: Geometry | None = None, data: bytes | None = None
) -> np.ndarray:
    """Decode ``path`` (or ``data``, the bytes of a file named ``path``) to an upright
    ``(H, W, 3)`` uint8 array, resized by ``geometry``.

    Raises
    ------
    ImageDecodeError
        For an empty, truncated, unsupported or oversized file; ``reason`` says which.
    """
    path = Path(path)
    image = open_photo(path, data)
    try:
        with image:
            reduced = _reduce(image, geometry)
            _check_pixels(path, image, reduced)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            image = to_rgb(image)
            if geometry is not None:
                image = geometry.apply(image)
            return np.asarray(image, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(path, f"too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow's decoders raise many types on damaged data
        raise ImageDecodeError(path, f"truncated or corrupt photo ({exc})") from exc


def _reduce(image: Image.Image, geometry: Geometry | None) -> bool:
    """Have a JPEG read at the smallest DCT scale that still covers ``geometry``; whether
    it was."""
    reduced = geometry is not None and isinstance(image, JpegImagePlugin.JpegImageFile)
    if reduced:
        want = geometry.decode_size
        if image.getexif().get(0x0112) in _ROTATED_ORIENTATIONS:
            want = want[::-1]
        image.draft("RGB", want)
    return reduced


def decoded_pixels(path: str | Path, geometry: Geometry | None, data: bytes) -> int:
    """How many pixels :func:`decode` would decode (0 when the header cannot be read: the
    decode itself then names the problem), reading the header only."""
    try:
        with open_photo(Path(path), data) as image:
            _reduce(image, geometry)
            width, height = image.size
    except Exception:  # the decode that follows says what is wrong with the file
        return 0
    return width * height


def photo_size(path: str | Path) -> tuple[int, int]:
    """Upright (width, height), reading as little of the file as the format allows."""
    with open_photo(path) as image:
        try:
            width, height = image.size
            rotated = image.getexif().get(0x0112) in _ROTATED_ORIENTATIONS
        except Exception as exc:  # PNG keeps EXIF after the pixels: a cut file fails here
            raise ImageDecodeError(Path(path), f"truncated or corrupt photo ({exc})") from exc
        return (height, width) if rotated else (width, height)
