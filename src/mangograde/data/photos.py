"""Finding photo files and naming them: the photo types read, the ids users see
(``Class_I/img_1.jpg``), looking a photo up by the id a CSV gives, and the --include /
--exclude globs on those ids.

This module only finds files; it never decodes a photo.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from ..basics.errors import DatasetError, listing, plural

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}


@dataclass(frozen=True, eq=False)
class Found:
    """What one layout found under ``root``: a ``Dataset`` but its fruit groups."""

    root: Path
    layout: str
    image_ids: tuple[str, ...]
    paths: tuple[Path, ...]
    grades: tuple[str, ...]
    labels: np.ndarray | None = None
    notices: tuple[str, ...] = field(default=())


def rel_id(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (string slicing: pathlib is slow)."""
    text, prefix = str(path), str(root) + os.sep
    if text.startswith(prefix):
        return text[len(prefix) :].replace(os.sep, "/")
    return path.relative_to(root).as_posix()


def id_under(path: Path, folders: Sequence[Path]) -> str:
    """``path`` under the first of ``folders`` that holds it, or its file name."""
    for folder in folders:
        if str(path).startswith(str(folder) + os.sep):
            return rel_id(path, folder)
    return path.name


def has_photo_suffix(name: str) -> bool:
    return name.lower().endswith(PHOTO_SUFFIXES)


def scan(folder: Path, recursive: bool) -> tuple[list[Path], list[Path]]:
    """Photos and other (non-hidden, non-system) files under ``folder``, sorted."""
    photos, others = [], []
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(PHOTO_SUFFIXES):
                photos.append(Path(current, name))
            elif name.lower() not in SYSTEM_FILES:
                others.append(Path(current, name))
    # Sorted by the id a user sees, so the order (and so every split) is the same on any OS.
    return sorted(photos, key=lambda p: rel_id(p, folder)), sorted(others, key=os.fspath)


def ignored_notice(others: list[Path], root: Path) -> list[str]:
    if not others:
        return []
    names = [rel_id(p, root) for p in others]
    return [
        f"{plural(len(names), 'file')} ignored, not a supported photo type "
        f"({', '.join(PHOTO_SUFFIXES)}): {listing(names)}"
    ]


def find_photos(inputs: Sequence[str | Path]) -> tuple[list[Path], list[str], list[str]]:
    """Photos named by ``inputs`` (files, or folders searched with their subfolders).

    Returns the photos, the id of each (its file name, or its path under the folder when
    names repeat) and notices about files that were not photos.

    Raises
    ------
    DatasetError
        For a path that does not exist, a file that is not a photo type, or no photo at all.
    """
    photos: list[Path] = []
    ids: list[str] = []
    notices: list[str] = []
    not_photos: list[str] = []
    missing: list[str] = []
    seen: set[Path] = set()

    def add(found: Sequence[Path], names: Sequence[str]) -> None:
        for path, name in zip(found, names, strict=True):
            try:
                key = path.resolve()
            except (OSError, RuntimeError):  # a symlink loop: decoding names it, later
                key = Path(os.path.abspath(path))
            if key not in seen:  # a photo named twice (a folder and a file in it) counts once
                seen.add(key)
                photos.append(path)
                ids.append(name)

    for item in map(Path, inputs):
        if item.is_dir():
            found, others = scan(item, recursive=True)
            add(found, [rel_id(p, item) for p in found])
            notices += ignored_notice(others, item)
        elif item.is_file():
            if has_photo_suffix(item.name):
                add([item], [item.name])
            else:
                not_photos.append(str(item))
        else:
            missing.append(str(item))
    problems = []
    if missing:
        problems.append(f"{listing(missing)} {'does' if len(missing) == 1 else 'do'} not exist")
    if not_photos:
        problems.append(
            f"{listing(not_photos)} not a photo type mangograde reads ({', '.join(PHOTO_SUFFIXES)})"
        )
    if problems:
        raise DatasetError(
            f"Cannot grade these inputs: {'; '.join(problems)}. Give photo files or folders "
            "of photos."
        )
    if not photos:
        raise DatasetError(
            f"No photos found in {listing([str(i) for i in inputs])} "
            f"(looked for {', '.join(PHOTO_SUFFIXES)}, also in subfolders)."
        )
    names = [p.name for p in photos]
    if len(set(names)) == len(names):
        ids = names  # the competition's image_id is the file name
    elif len(set(ids)) != len(ids):
        ids = [str(p) for p in photos]
    return photos, ids, notices


class PhotoIndex:
    """Looks photos up by relative path, file name or file name without extension."""

    def __init__(self, rel_ids: Sequence[str], photos: Sequence[Path]) -> None:
        # Exact spellings first, then the same ignoring case ("IMG_1.JPG" for "img_1.jpg").
        self.tables: list[dict[str, list[Path]]] = [defaultdict(list) for _ in range(6)]
        for rel, path in zip(rel_ids, photos, strict=True):
            name = rel.rsplit("/", 1)[-1]
            for offset, text in ((0, rel), (1, name), (2, name.rsplit(".", 1)[0])):
                self.tables[offset][text].append(path)
                self.tables[offset + 3][text.lower()].append(path)

    def find(self, image_id: str) -> list[Path]:
        key = image_id.replace("\\", "/").removeprefix("./")
        name = key.rsplit("/", 1)[-1]
        for i, table in enumerate(self.tables):
            text = (key, name, name)[i % 3]
            found = table.get(text if i < 3 else text.lower())
            if found:
                return found
        return []


def kept(image_id: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a photo id matches an ``include`` glob (when any is given) and no ``exclude``."""
    return (not include or any(fnmatch(image_id, g) for g in include)) and not any(
        fnmatch(image_id, g) for g in exclude
    )


def globs(include: Sequence[str], exclude: Sequence[str]) -> str:
    """The globs as the options that gave them, for a message."""
    return " ".join([*(f"--include {g}" for g in include), *(f"--exclude {g}" for g in exclude)])
