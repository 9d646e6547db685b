"""A disk cache of decoded, resized photos as uint8 arrays.

Entries are keyed by the photo's identity (resolved path, size, modification time) and
the geometry, so a changed photo or another size gets a new entry. Each entry carries
its shape and a CRC32 of its pixels: a truncated or corrupt file is decoded again, never
trusted. Writes go to a temporary file that is renamed into place, so two runs sharing
a cache never see half an entry.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

CACHE_ENV = "MANGOGRADE_CACHE_DIR"
FORMAT_VERSION = 1
_MAGIC = b"MGC1"
_HEADER = struct.Struct("<4sIIII")  # magic, height, width, channels, crc32


def default_cache_dir() -> Path:
    """``$MANGOGRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mangograde``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mangograde"


class ImageCache:
    """Decoded photos on disk; see the module docstring for the guarantees."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.write_error: str | None = None

    def key(self, path: Path, geometry_key: str) -> str:
        stat = Path(path).stat()
        identity = f"{FORMAT_VERSION}|{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha256(f"{identity}|{geometry_key}".encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key[2:]}.mgc"

    def get(self, key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
        """The cached array, or None when absent, of another shape, or corrupt."""
        try:
            blob = self._file(key).read_bytes()
        except OSError:
            return None
        if len(blob) < _HEADER.size:
            return None
        magic, h, w, c, crc = _HEADER.unpack_from(blob)
        pixels = memoryview(blob)[_HEADER.size :]
        if magic != _MAGIC or (h, w, c) != tuple(shape) or len(pixels) != h * w * c:
            return None
        if zlib.crc32(pixels) != crc:
            return None
        return np.frombuffer(pixels, dtype=np.uint8).reshape(h, w, c).copy()

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` atomically; a cache that cannot be written is noted, not fatal."""
        if self.write_error is not None:
            return
        data = np.ascontiguousarray(array, dtype=np.uint8)
        h, w, c = data.shape
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".mgc")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(_HEADER.pack(_MAGIC, h, w, c, zlib.crc32(data)))
                    handle.write(data.tobytes())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.write_error = (
                f"cannot write the image cache in {self.root} ({exc.strerror or exc}); "
                f"photos are decoded every run. Set --cache-dir or {CACHE_ENV}."
            )
