"""Fruit groups from a CSV: which photos show one fruit (``image,group``, or
``image,...,fruit_id``, perhaps with a ``grade_folder`` column)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..basics.errors import DatasetError, listing, plural
from .csv_columns import FOLDER_COLUMNS, GROUP_COLUMNS, IMAGE_COLUMNS, split_header
from .csvfile import read_rows
from .photos import PhotoIndex
from .problems import Problems


def read_groups(
    image_ids: Sequence[str], paths: Sequence[Path], groups_csv: Path, complete: bool = True
) -> tuple[tuple[str, ...], list[str]]:
    """The fruit group of each photo (``paths``, known by ``image_ids``) from
    ``groups_csv``, and notices (rows naming photos that are not there, ignored).

    Every photo must have a group (a split that guesses could leak one fruit into two
    folds). With ``complete=False`` (grading, not splitting) a photo without a row gets
    the group ``""``: a fruit of its own.
    """
    if not groups_csv.is_file():
        raise DatasetError(f"Groups file {groups_csv} does not exist.")
    rows = read_rows(groups_csv)
    if not rows:
        raise DatasetError(f"Groups file {groups_csv} has no rows. Expected lines image,group.")
    index = PhotoIndex(image_ids, paths)
    width = len(rows[0][1])
    rows, (image_col, group_col, folder_col), had_header = split_header(
        rows, index, (IMAGE_COLUMNS, GROUP_COLUMNS, FOLDER_COLUMNS)
    )
    image_col = 0 if image_col is None else image_col
    if group_col is None:
        if had_header and width != 2:
            raise DatasetError(
                f"Cannot tell which column of {groups_csv} holds the group: name it 'group' "
                f"(recognised: {', '.join(GROUP_COLUMNS)})."
            )
        group_col = 1
    problems = Problems(f"the groups in {groups_csv}")
    group_of: dict[Path, tuple[str, int]] = {}
    outside, conflicts, short, ambiguous = [], [], [], []
    for line, cells in rows:
        if len(cells) <= max(image_col, group_col) or not cells[group_col]:
            short.append(str(line))
            continue
        image_id = cells[image_col]
        if folder_col is not None and "/" not in image_id and cells[folder_col]:
            image_id = f"{cells[folder_col]}/{image_id}"  # e.g. grade_folder + bare file name
        found = index.find(image_id)
        if len(found) > 1:
            ambiguous.append(f"row {line} {image_id}")
            continue
        if not found:
            outside.append(image_id)
            continue
        group = cells[group_col]
        earlier = group_of.get(found[0])
        if earlier and earlier[0] != group:
            conflicts.append(f"{cells[image_col]} (rows {earlier[1]} and {line})")
        group_of.setdefault(found[0], (group, line))
    if short:
        problems.add(f"{plural(len(short), 'row')} with no group (lines {listing(short)})")
    if conflicts:
        problems.add(f"photos given two different groups: {listing(conflicts)}")
    if ambiguous:
        problems.add(
            f"{plural(len(ambiguous), 'row')} match more than one photo: {listing(ambiguous)}; "
            "give the path relative to DATA (or a grade_folder column)"
        )
    no_group = [name for name, p in zip(image_ids, paths, strict=True) if p not in group_of]
    if no_group and complete:
        problems.add(
            f"{plural(len(no_group), 'photo')} of the dataset have no group: {listing(no_group)}; "
            "add a row for each"
        )
    problems.raise_if_any()
    notices = []
    if outside:
        notices.append(
            f"{plural(len(outside), 'row')} of {groups_csv.name} name photos not in this "
            f"dataset (ignored), e.g. {listing(outside, 3)}"
        )
    return tuple(group_of[p][0] if p in group_of else "" for p in paths), notices
