"""``serve --keep-photos DIR``: a copy of every graded photo, named by the SHA-256 of its
bytes (the records' ``sha256``), so a photo can be looked at and relabelled later. The
folder is kept under a size limit by deleting its oldest copies, only files named as this
keeper names them.

Nobody else's file is ever written or served: a copy is written to a new file of a random
name (``O_CREAT | O_EXCL | O_NOFOLLOW``) and renamed into place, and only regular files
inside the folder are served, opened without following a symbolic link."""

from __future__ import annotations

import errno
import math
import mimetypes
import os
import re
import secrets
import stat
import threading
import time
from pathlib import Path

from ..basics.errors import MangogradeError, SettingsError

_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp|bmp|tif|img)$")
# a copy being written: .NAME.RANDOM.part (.NAME.part: written by mangograde 0.x)
_PART = re.compile(r"^\.[0-9a-f]{64}\.(jpg|png|webp|bmp|tif|img)(\.[0-9a-f]+)?\.part$")
_SUFFIXES = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"RI": ".webp", b"BM": ".bmp",
             b"II": ".tif", b"MM": ".tif"}  # fmt: skip
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
STALE_PART_S = 60.0  # a .part file this old was left by a process that died writing it


class KeepingFailed(MangogradeError):
    """A photo could not be kept (the folder is full, or cannot be written)."""


def suffix_of(data: bytes) -> str:
    return _SUFFIXES.get(data[:2], ".img")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _regular(path: Path) -> bool:
    """A regular file itself (never through a symbolic link)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class PhotoKeeper:
    def __init__(self, folder: Path, limit_mb: float) -> None:
        if not math.isfinite(limit_mb) or limit_mb <= 0:
            raise SettingsError(
                f"--keep-photos-limit-mb must be a number above 0 (megabytes), got {limit_mb}."
            )
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise SettingsError(f"--keep-photos {folder}: this folder cannot be written.")
        self.folder = folder
        self._inside = folder.resolve()
        self.limit = int(limit_mb * 1024 * 1024)
        self._lock = threading.Lock()
        self.evicted = 0
        self.stale_parts = self._clear_stale_parts()
        found = [p for p in folder.iterdir() if _NAME.match(p.name) and _regular(p)]
        found.sort(key=lambda p: p.stat().st_mtime)
        self._sizes = {p.name: p.stat().st_size for p in found}  # oldest first
        self._total = sum(self._sizes.values())

    def _clear_stale_parts(self) -> int:
        """Delete the partial copies a process left when it died while writing them (and
        any link named like one: this keeper never makes links)."""
        cleared, now = 0, time.time()
        for entry in os.scandir(self.folder):
            if not _PART.match(entry.name):
                continue
            try:
                found = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(found.st_mode) and now - found.st_mtime < STALE_PART_S:
                    continue  # being written by another process sharing the folder
                if stat.S_ISDIR(found.st_mode):
                    continue
                os.unlink(entry.path)
                cleared += 1
            except FileNotFoundError:
                continue
        return cleared

    def path(self, sha256: str, data: bytes) -> Path:
        return self.folder / f"{sha256}{suffix_of(data)}"

    def find(self, sha256: str) -> Path | None:
        """The kept copy of the photo of this SHA-256, if it is still kept: a regular file
        inside the folder, never a link to somewhere else."""
        for suffix in set(_SUFFIXES.values()) | {".img"}:
            path = self.folder / f"{sha256}{suffix}"
            if _regular(path) and path.resolve().parent == self._inside:
                return path
        return None

    def read(self, sha256: str) -> tuple[bytes, str] | None:
        """The kept copy's bytes and media type, opened without following a link (and
        without waiting on a FIFO put there meanwhile); None when it is not kept."""
        path = self.find(sha256)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None  # evicted meanwhile, or replaced by a link
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            data = handle.read()
        return data, mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def _refusal(self, exc: OSError) -> KeepingFailed:
        reason = exc.strerror or str(exc)
        if exc.errno in _FULL:
            return KeepingFailed(
                f"The kept-photos folder {self.folder} is full ({reason}): the photo was not "
                "graded. Free space there, or lower serve --keep-photos-limit-mb, then try again."
            )
        return KeepingFailed(f"The kept-photos folder {self.folder} cannot be written "
                             f"({reason}): the photo was not graded.")  # fmt: skip

    def _write(self, target: Path, data: bytes) -> None:
        """``data`` into a new file of a random name, then renamed to ``target``; nothing
        is left behind when that fails (:class:`KeepingFailed`)."""
        part = self.folder / f".{target.name}.{secrets.token_hex(8)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(part, flags, 0o644)
        except OSError as exc:
            raise self._refusal(exc) from None
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(part, target)  # replaces a link of that name, never its target
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise self._refusal(exc) from None

    def keep(self, sha256: str, data: bytes) -> Path:
        """Write the photo (once: the same bytes keep one copy), then trim to the limit;
        :class:`KeepingFailed` when it cannot be written."""
        target = self.path(sha256, data)
        with self._lock:
            if target.name in self._sizes and _regular(target):
                # seen again: the newest copy, the last evicted
                os.utime(target, follow_symlinks=os.utime not in os.supports_follow_symlinks)
                self._sizes[target.name] = self._sizes.pop(target.name)
            else:
                self._write(target, data)
                self._total -= self._sizes.pop(target.name, 0)
                self._sizes[target.name] = len(data)
                self._total += len(data)
            while self._total > self.limit and len(self._sizes) > 1:
                oldest = next(iter(self._sizes))
                self._total -= self._sizes.pop(oldest)
                (self.folder / oldest).unlink(missing_ok=True)
                self.evicted += 1
        return target
