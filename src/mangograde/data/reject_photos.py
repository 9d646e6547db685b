"""``--reject-photos DIR``: photos of what the line must never grade (empty cups, trays,
leaves), checked before any training starts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from ..basics.errors import DatasetError
from .photos import find_photos


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reject_photos(
    folder: str | Path, training: Sequence[Path], option: str = "--reject-photos"
) -> list[Path]:
    """The photos in ``folder`` (with its subfolders); refused when it is missing or holds
    no photo, or when a photo is also among the ``training`` photos (the same bytes)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"{option} {folder}: no such folder. Give a folder of photos of what to reject "
            "(empty cups, trays, leaves)."
        )
    try:
        photos = find_photos([folder])[0]
    except DatasetError:
        photos = []
    if not photos:
        raise DatasetError(
            f"{option} {folder} holds no photo (.jpg, .png, ...): put photos of what to "
            "reject there, or leave the option out."
        )
    known = {_digest(Path(p)): Path(p) for p in training}
    both = [(p, known[d]) for p in photos if (d := _digest(p)) in known]
    if both:
        shown = "; ".join(f"{a} is {b}" for a, b in both[:3])
        raise DatasetError(
            f"{option}: {len(both)} photo(s) are also training photos ({shown}"
            f"{' ...' if len(both) > 3 else ''}). A photo is either a mango to grade or "
            "something to reject: take them out of one of the two."
        )
    return photos
