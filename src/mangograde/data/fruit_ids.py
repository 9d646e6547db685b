"""Which fruit each photo to grade shows: from a groups CSV (``--groups``, the columns
``train`` reads) or from the folders (``--fruit-folders``: ``PHOTOS/FRUIT_ID/*.jpg``).

A photo with no fruit id (``""``) is a fruit of its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..basics.errors import DatasetError, listing, plural
from .groups import read_groups
from .photos import PHOTO_SUFFIXES


def fruits_from_csv(
    paths: Sequence[Path], image_ids: Sequence[str], groups_csv: Path
) -> tuple[list[str], list[str]]:
    """Each photo's fruit id from ``groups_csv`` (``""`` for a photo it does not name), and
    notices (rows naming photos that are not there)."""
    groups, notices = read_groups(image_ids, paths, Path(groups_csv), complete=False)
    return list(groups), notices


def fruits_from_folders(
    inputs: Sequence[Path], paths: Sequence[Path]
) -> tuple[list[str], list[str]]:
    """Each photo's fruit id from the folder it lies in, under a folder given as input
    (``PHOTOS/FRUIT_ID/photo.jpg`` -> ``FRUIT_ID``). A photo given as a file, or lying
    directly in an input folder, is a fruit of its own; a fruit folder without photos is
    refused."""
    roots = [Path(i).resolve() for i in inputs if Path(i).is_dir()]
    if not roots:
        raise DatasetError(
            "--fruit-folders reads PHOTOS/FRUIT_ID/*.jpg: give the folder PHOTOS, whose "
            "subfolders are the fruits."
        )
    empty = [
        str(folder)
        for root in roots
        for folder in sorted(p for p in root.rglob("*") if p.is_dir())
        if not any(f.suffix.lower() in PHOTO_SUFFIXES for f in folder.iterdir() if f.is_file())
        and not any(d.is_dir() for d in folder.iterdir())
    ]
    if empty:
        raise DatasetError(
            f"{'This fruit folder holds' if len(empty) == 1 else 'These fruit folders hold'} no "
            f"photos: {listing(empty)}. Put each fruit's photos in its folder, or remove the "
            "empty folders."
        )
    fruit_ids, loose = [], []
    for path in paths:
        parent = Path(os.path.abspath(path)).parent  # not resolve(): a symlink loop is a photo
        root = next((r for r in roots if parent == r or r in parent.parents), None)
        if root is None or parent == root:
            fruit_ids.append("")
            loose.append(path.name)
        else:
            fruit_ids.append(parent.relative_to(root).as_posix())
    notices = []
    if loose:
        notices.append(
            f"{plural(len(loose), 'photo')} lie outside a fruit folder and are graded each as "
            f"a fruit of its own: {listing(loose, 3)}"
        )
    return fruit_ids, notices
