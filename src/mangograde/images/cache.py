"""A disk cache of decoded, resized photos as uint8 arrays.

Keyed by file identity (absolute path, inode, size, modification time) and the
geometry, so a changed photo or another size never hits a stale entry. Each photo is
stored once:

* a *pack* per list of photos (a whole dataset at one geometry), read back as a memory
  map: a warm load is then one file mapped and checked, not hundreds opened. Its index
  (``.idx``: each row's key and checksum) lets another list (a subset, a dataset that
  changed) take single photos out of it;
* one entry per photo only while no pack holds it: written as photos are decoded (so an
  interrupted load keeps its work), deleted once a pack holds them. A pack whose photos
  are all in a newer pack goes too.

Every entry, pack and row carries a checksum of its pixels: a truncated or corrupt file
is decoded again, never trusted. Writes go to a temporary file renamed into place, so
two runs sharing a cache never see half an entry.

The cache keeps under a size limit (``$MANGOGRADE_CACHE_MAX``, default 4 GiB): after a
load that wrote to it, the least recently used files go first (a hit marks its file
used by touching its modification time).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import PIL

from ..basics.errors import SettingsError

CACHE_ENV = "MANGOGRADE_CACHE_DIR"
CACHE_MAX_ENV = "MANGOGRADE_CACHE_MAX"
DEFAULT_MAX_BYTES = 4 * 2**30
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """``"4G"``, ``"500M"``, ``"1.5GB"``, ``"123456"`` -> bytes."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = cleaned.rstrip("KMGT"), cleaned[len(cleaned.rstrip("KMGT")) :]
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise SettingsError(
            f"{CACHE_MAX_ENV}={text!r} is not a size such as 4G, 500M or 1000000."
        ) from None
    if value <= 0:
        raise SettingsError(f"{CACHE_MAX_ENV}={text!r}: a cache size must be above 0.")
    return int(value)


def max_cache_bytes() -> int:
    """The size limit from ``$MANGOGRADE_CACHE_MAX``, or the default."""
    text = os.environ.get(CACHE_MAX_ENV, "")
    return parse_size(text) if text else DEFAULT_MAX_BYTES


FORMAT_VERSION = 2
_MAGIC = b"MGC2"
_HEADER = struct.Struct("<4sIIIQ")  # magic, height, width, channels, checksum
_PACK_MAGIC = b"MGP2"
_HEX = re.compile(r"[0-9a-f]{64}")  # the names of entries (split 2 + 62) and packs
_PACK_HEADER = struct.Struct("<4sQIIIQ32s")  # magic, n, h, w, c, checksum, keys digest


def checksum(pixels: np.ndarray) -> int:
    """Sum of the pixel bytes read as 64-bit words (wrapping), plus the leftover bytes.

    Any changed byte changes it; it runs at memory speed, where CRC32 would make a
    warm load several times slower.
    """
    flat = pixels.reshape(-1)
    whole = len(flat) // 8 * 8
    words = flat[:whole].view(np.uint64).sum(dtype=np.uint64)
    return (int(words) + int(flat[whole:].sum(dtype=np.uint64))) & 0xFFFFFFFFFFFFFFFF


def default_cache_dir() -> Path:
    """``$MANGOGRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mangograde``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mangograde"


def _touch(file: Path) -> None:
    """Mark ``file`` as just used (what eviction goes by); a read-only cache is fine."""
    with contextlib.suppress(OSError):
        os.utime(file)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _index_rows(index: Path) -> list[tuple[str, int]]:
    """A pack index's (key, checksum) per row; none if it cannot be read."""
    try:
        lines = index.read_text(encoding="ascii").splitlines()
        return [(key, int(total)) for key, total in (line.split(" ") for line in lines)]
    except (OSError, ValueError, UnicodeDecodeError):
        return []


def _keys_digest(keys: Sequence[str]) -> bytes:
    """Which photo versions a pack holds, as stored in its header."""
    return hashlib.sha256("\n".join(keys).encode()).digest()


class ImageCache:
    """Decoded photos on disk; see the module docstring for the guarantees."""

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else max_cache_bytes()
        self.write_error: str | None = None
        self.written = 0  # bytes this cache object wrote: trim only after writing
        self._rows: dict[str, tuple[Path, int, int]] | None = None  # key -> pack, row, sum
        self._maps: dict[Path, np.ndarray] = {}
        self._lock = threading.Lock()

    def key(self, path: str | Path, geometry_key: str) -> str:
        """Names one photo version at one geometry; another Pillow may decode differently."""
        stat = os.stat(path)
        return _digest(
            f"{FORMAT_VERSION}|{PIL.__version__}|{os.path.abspath(path)}|{stat.st_ino}|"
            f"{stat.st_size}|{stat.st_mtime_ns}|{geometry_key}"
        )

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key[2:]}.mgc"

    def _pack_file(self, paths: Sequence[str | Path], geometry_key: str) -> Path:
        names = "\n".join([geometry_key, *(os.path.abspath(p) for p in paths)])
        return self.root / "packs" / f"{_digest(names)}.mgp"

    def get(
        self, key: str, shape: tuple[int, int, int], out: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The cached array (read into ``out`` if given), or None when absent, of
        another shape, or corrupt."""
        target = np.empty(shape, dtype=np.uint8) if out is None else out
        header = bytearray(_HEADER.size)
        try:
            with open(self._file(key), "rb", buffering=0) as handle:
                if handle.readinto(header) != _HEADER.size:
                    return None
                magic, h, w, c, expected = _HEADER.unpack(header)
                if magic != _MAGIC or (h, w, c) != tuple(shape):
                    return None
                view = memoryview(target.reshape(-1))
                if handle.readinto(view) != target.nbytes or handle.read(1):
                    return None
        except FileNotFoundError:
            return self._from_pack(key, target)
        except OSError:
            return None
        if checksum(target) != expected:
            return None
        _touch(self._file(key))
        return target

    def _from_pack(self, key: str, target: np.ndarray) -> np.ndarray | None:
        """The photo's row of the pack that holds it, if intact."""
        with self._lock:
            if self._rows is None:
                self._rows = self._read_indexes()
            found = self._rows.get(key)
            if found is None:
                return None
            file, row, expected = found
            arrays = self._maps.get(file)
            if arrays is None:
                arrays = self._maps[file] = self._map(file, target.shape)
        if arrays is None or row >= len(arrays) or arrays.shape[1:] != target.shape:
            return None
        target[...] = arrays[row]
        return target if checksum(target) == expected else None

    def _map(self, file: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        try:
            with open(file, "rb") as handle:
                magic, n, h, w, c, _, _ = _PACK_HEADER.unpack(handle.read(_PACK_HEADER.size))
            if magic != _PACK_MAGIC or (h, w, c) != tuple(shape):
                return None
            arrays = np.memmap(file, np.uint8, "r", _PACK_HEADER.size, (n, h, w, c))
        except (OSError, ValueError, struct.error):
            return None
        _touch(file)
        return arrays

    def _read_indexes(self) -> dict[str, tuple[Path, int, int]]:
        rows: dict[str, tuple[Path, int, int]] = {}
        for index in sorted((self.root / "packs").glob("*.idx")):
            for row, (key, total) in enumerate(_index_rows(index)):
                rows[key] = (index.with_suffix(".mgp"), row, total)
        return rows

    def put(self, key: str, array: np.ndarray) -> None:
        """Store one photo's array; a cache that cannot be written is noted, not fatal."""
        data = np.ascontiguousarray(array, dtype=np.uint8)
        self._write(self._file(key), _HEADER.pack(_MAGIC, *data.shape, checksum(data)), data)

    def get_pack(
        self,
        paths: Sequence[str | Path],
        keys: Sequence[str],
        geometry_key: str,
        shape: tuple[int, int, int],
    ) -> np.ndarray | None:
        """All photos as one ``(n, *shape)`` copy-on-write memory map, or None unless the
        pack was written for exactly these photo versions and is intact."""
        file = self._pack_file(paths, geometry_key)
        try:
            with open(file, "rb") as handle:
                header = handle.read(_PACK_HEADER.size)
            magic, n, h, w, c, expected, digest = _PACK_HEADER.unpack(header)
            size_ok = file.stat().st_size == _PACK_HEADER.size + n * h * w * c
        except (OSError, struct.error):
            return None
        if magic != _PACK_MAGIC or (n, h, w, c) != (len(keys), *shape) or not size_ok:
            return None
        if n == 0 or digest != _keys_digest(keys):
            return None
        try:
            arrays = np.memmap(file, np.uint8, "c", _PACK_HEADER.size, (n, h, w, c))
        except (OSError, ValueError):
            return None
        if checksum(arrays) != expected:
            return None
        _touch(file)
        return arrays

    def put_pack(
        self, paths: Sequence[str | Path], keys: Sequence[str], geometry_key: str, arrays
    ) -> None:
        """Store a whole list of photos as one pack (see ``get_pack``)."""
        data = np.ascontiguousarray(arrays, dtype=np.uint8)
        header = _PACK_HEADER.pack(_PACK_MAGIC, *data.shape, checksum(data), _keys_digest(keys))
        file = self._pack_file(paths, geometry_key)
        self._write(file, header, data)
        index = "".join(f"{key} {checksum(row)}\n" for key, row in zip(keys, data, strict=True))
        self._write(file.with_suffix(".idx"), index.encode(), np.empty(0, np.uint8))
        if self.write_error is not None:
            return
        for key in keys:  # the pack holds them now: one copy
            self._file(key).unlink(missing_ok=True)
        held = set(keys)
        for other in self._files((".idx",)):
            rows = {k for k, _ in _index_rows(other)}
            if other != file.with_suffix(".idx") and rows and rows <= held:
                other.with_suffix(".mgp").unlink(missing_ok=True)
                other.unlink(missing_ok=True)
        with self._lock:
            self._rows, self._maps = None, {}

    def _files(self, suffixes: tuple[str, ...]) -> list[Path]:
        """The cache's own files of these kinds: named and headed as it writes them (a
        file someone else put in the folder is never counted, evicted or cleared)."""
        if not self.root.is_dir():
            return []
        return [
            f
            for f in self.root.rglob("*")
            if f.suffix in suffixes and f.is_file() and not f.is_symlink() and self._ours(f)
        ]

    def _ours(self, file: Path) -> bool:
        if file.suffix == ".part":
            return file.name.startswith(".tmp-")
        packs = file.parent == self.root / "packs"
        if file.suffix == ".idx":
            return packs and _HEX.fullmatch(file.stem) is not None
        if file.suffix == ".mgp":
            named, magic = packs and _HEX.fullmatch(file.stem) is not None, _PACK_MAGIC
        else:
            whole = file.parent.name + file.stem
            named = file.parent.parent == self.root and _HEX.fullmatch(whole) is not None
            magic = _MAGIC
        try:
            with open(file, "rb") as handle:
                return named and handle.read(4) == magic
        except OSError:
            return False

    def usage(self) -> tuple[int, int, int]:
        """(photos, packs, bytes) on disk: photos in packs or in entries of their own."""
        files = self._files((".mgc", ".mgp"))
        entries = sum(f.suffix == ".mgc" for f in files)
        packed = sum(len(_index_rows(f.with_suffix(".idx"))) for f in files if f.suffix == ".mgp")
        return entries + packed, len(files) - entries, sum(f.stat().st_size for f in files)

    def trim(self) -> int:
        """Delete the least recently used files until the cache is under 90% of its
        limit (if it is over it); returns the bytes freed."""
        files = [(f, f.stat()) for f in self._files((".mgc", ".mgp"))]
        total = sum(s.st_size for _, s in files)
        if total <= self.max_bytes:
            return 0
        freed = 0
        for file, stat in sorted(files, key=lambda item: item[1].st_mtime_ns):
            if total - freed <= 0.9 * self.max_bytes:
                break
            file.unlink(missing_ok=True)
            file.with_suffix(".idx").unlink(missing_ok=True)
            freed += stat.st_size
        return freed

    def clear(self) -> int:
        """Delete every entry, pack and leftover temporary file; returns bytes freed."""
        freed = 0
        for file in self._files((".mgc", ".mgp", ".idx", ".part")):
            freed += file.stat().st_size
            file.unlink(missing_ok=True)
        return freed

    def _write(self, target: Path, header: bytes, data: np.ndarray) -> None:
        """Write atomically: a temporary file in the same folder, renamed into place."""
        if self.write_error is not None:
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(header)
                    handle.write(memoryview(data.reshape(-1)))
                os.replace(tmp, target)
                self.written += len(header) + data.nbytes
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            self.write_error = (
                f"cannot write the image cache in {self.root} ({exc.strerror or exc}); "
                f"photos are decoded every run. Set --cache-dir or {CACHE_ENV}."
            )
