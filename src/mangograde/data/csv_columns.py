"""The columns a label or groups CSV may name, and telling its header row from data."""

from __future__ import annotations

from .csvfile import find_column
from .photos import PhotoIndex, has_photo_suffix

IMAGE_COLUMNS = ("image_id", "image", "filename", "file", "path", "photo", "img")
LABEL_COLUMNS = ("label", "grade", "class", "等級")
GROUP_COLUMNS = ("group", "group_id", "fruit_id", "fruit", "groups")
FOLDER_COLUMNS = ("grade_folder", "folder", "class_folder", "subfolder")
KNOWN_COLUMNS = frozenset(IMAGE_COLUMNS + LABEL_COLUMNS + GROUP_COLUMNS + FOLDER_COLUMNS)


def split_header(
    rows: list[tuple[int, list[str]]],
    index: PhotoIndex,
    columns: tuple[tuple[str, ...], ...],
    is_data: bool = False,
) -> tuple[list[tuple[int, list[str]]], list[int | None], bool]:
    """Drop the header row if there is one and find the named columns in it.

    The first row is a header when it names a known column, or when its first cell can
    name no photo (no photo of that name, no photo suffix) and ``is_data`` does not say
    otherwise (a known grade in the label column). Returns (rows, columns, had_header).
    """
    first = rows[0][1]
    named = {cell.lower() for cell in first} & KNOWN_COLUMNS
    cannot_be_data = not index.find(first[0]) and not has_photo_suffix(first[0])
    if not named and (is_data or not cannot_be_data):
        return rows, [None] * len(columns), False
    return rows[1:], [find_column(first, names) for names in columns], True
