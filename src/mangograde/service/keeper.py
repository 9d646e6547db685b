"""``serve --keep-photos DIR``: a copy of every graded photo, named by the SHA-256 of its
bytes (the records' ``sha256``), so a photo can be looked at and relabelled later. The
folder is kept under a size limit by deleting its oldest copies, only files named as this
keeper names them."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from ..basics.errors import SettingsError

_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|bmp|tif|img)$")
_SUFFIXES = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"RI": ".webp", b"BM": ".bmp",
             b"II": ".tif", b"MM": ".tif"}  # fmt: skip


def suffix_of(data: bytes) -> str:
    return _SUFFIXES.get(data[:2], ".img")


class PhotoKeeper:
    def __init__(self, folder: Path, limit_mb: float) -> None:
        if limit_mb <= 0:
            raise SettingsError(f"--keep-photos-limit-mb must be above 0, got {limit_mb}.")
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise SettingsError(f"--keep-photos {folder}: this folder cannot be written.")
        self.folder = folder
        self.limit = int(limit_mb * 1024 * 1024)
        self._lock = threading.Lock()
        self.evicted = 0
        found = [p for p in folder.iterdir() if _NAME.match(p.name) and p.is_file()]
        found.sort(key=lambda p: p.stat().st_mtime)
        self._sizes = {p.name: p.stat().st_size for p in found}  # oldest first
        self._total = sum(self._sizes.values())

    def path(self, sha256: str, data: bytes) -> Path:
        return self.folder / f"{sha256}{suffix_of(data)}"

    def find(self, sha256: str) -> Path | None:
        """The kept copy of the photo of this SHA-256, if it is still kept."""
        for suffix in set(_SUFFIXES.values()) | {".img"}:
            path = self.folder / f"{sha256}{suffix}"
            if path.is_file():
                return path
        return None

    def keep(self, sha256: str, data: bytes) -> Path:
        """Write the photo (once: the same bytes keep one copy), then trim to the limit."""
        target = self.path(sha256, data)
        with self._lock:
            if target.name in self._sizes and target.exists():
                os.utime(target)  # seen again: the newest copy, the last evicted
                self._sizes[target.name] = self._sizes.pop(target.name)
            else:
                part = target.with_name(f".{target.name}.part")
                part.write_bytes(data)
                os.replace(part, target)
                self._sizes[target.name] = len(data)
                self._total += len(data)
            while self._total > self.limit and len(self._sizes) > 1:
                oldest = next(iter(self._sizes))
                self._total -= self._sizes.pop(oldest)
                (self.folder / oldest).unlink(missing_ok=True)
                self.evicted += 1
        return target
