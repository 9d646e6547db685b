"""The ``labels-csv`` layout: a folder of photos plus a label CSV (the AI CUP format:
``image_id,label``, header optional; UTF-8, BOM or Big5)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..basics.errors import DatasetError, listing, plural
from ..basics.outputs import same_file
from .csv_columns import IMAGE_COLUMNS, KNOWN_COLUMNS, LABEL_COLUMNS, split_header
from .csvfile import read_rows
from .grade_names import DEFAULT_GRADES, normalise_label
from .photos import PHOTO_SUFFIXES, Found, PhotoIndex, ignored_notice, rel_id, scan
from .problems import Problems


def from_label_csv(
    root: Path, csv_path: Path, grades: tuple[str, ...] | None, unordered: bool = False
) -> Found:
    if not csv_path.is_file():
        raise DatasetError(f"Label file {csv_path} does not exist.")
    rows = read_rows(csv_path)
    if not rows:
        raise DatasetError(f"Label file {csv_path} has no rows. Expected lines image_id,label.")
    scanned = scan(root, recursive=True)
    index = PhotoIndex([rel_id(p, root) for p in scanned[0]], scanned[0])
    first = rows[0][1]
    if grades is None and unordered:  # the classes are whatever the labels say
        is_data = not ({cell.lower() for cell in first} & KNOWN_COLUMNS)
    else:
        grades = grades or DEFAULT_GRADES
        known = {g.lower() for g in grades} | {normalise_label(g) for g in grades}
        is_data = len(first) > 1 and normalise_label(first[1]) in known
    rows, (image_col, label_col), _ = split_header(
        rows, index, (IMAGE_COLUMNS, LABEL_COLUMNS), is_data=is_data
    )
    image_col = 0 if image_col is None else image_col
    label_col = 1 if label_col is None else label_col
    problems = Problems(f"the labels in {csv_path} for photos in {root}")
    short, entries = [], []
    for line, cells in rows:
        if len(cells) <= max(image_col, label_col):
            short.append(line)
        else:
            entries.append((line, cells[image_col], cells[label_col]))
    if short:
        problems.add(
            f"{plural(len(short), 'row')} with fewer than {max(image_col, label_col) + 1} "
            f"columns (lines {listing([str(n) for n in short])}); expected image_id,label"
        )
    return labelled_photos(root, csv_path, entries, grades, problems, scanned=scanned)


def labelled_photos(
    root: Path,
    source: Path,
    entries: list[tuple[int | str, str, str]],
    grades: tuple[str, ...] | None,
    problems: Problems,
    unit: tuple[str, str] = ("row", "lines"),
    notices: tuple[str, ...] = (),
    scanned: tuple[list[Path], list[Path]] | None = None,
) -> Found:
    """The photos under ``root`` that ``entries`` (where in ``source``, photo id, label)
    name, with their labels; every problem said at once. ``unit``: what an entry is
    called, one and many (``row``, ``lines``; ``task``, ``tasks``); ``scanned``: the
    photos and other files under ``root``, when already found."""
    noun, many = unit
    photos, others = scanned or scan(root, recursive=True)
    index = PhotoIndex([rel_id(p, root) for p in photos], photos)
    unreadable = PhotoIndex([rel_id(p, root) for p in others], others)
    if grades is None:
        found = {raw for _, _, raw in entries}
        grades = tuple(sorted(found - {""}, key=str.lower))
    grade_of = {g.lower(): i for i, g in enumerate(grades)}
    grade_of.update({normalise_label(g): i for i, g in enumerate(grades)})
    missing, unknown, ambiguous, unsupported = [], defaultdict(list), [], []
    first_row_of: dict[Path, int | str] = {}
    duplicates = []
    paths, labels = [], []
    for line, image_id, raw_label in entries:
        label = grade_of.get(normalise_label(raw_label))
        if label is None:
            unknown[raw_label].append(line)
        found = index.find(image_id)
        if not found:
            wrong_type = unreadable.find(image_id)
            (unsupported if wrong_type else missing).append(f"{noun} {line} {image_id}")
            continue
        if len(found) > 1:
            ambiguous.append(
                f"{noun} {line} {image_id} ({listing([rel_id(p, root) for p in found])})"
            )
            continue
        path = found[0]
        if path in first_row_of:
            duplicates.append(f"{image_id} ({noun}s {first_row_of[path]} and {line})")
            continue
        first_row_of[path] = line
        if label is not None:
            paths.append(path)
            labels.append(label)
    if missing:
        problems.add(
            f"{plural(len(missing), noun)} name photos that are not in {root}: {listing(missing)}"
        )
    if unsupported:
        problems.add(
            f"{plural(len(unsupported), noun)} name files of a type mangograde does not read "
            f"({', '.join(PHOTO_SUFFIXES)}): {listing(unsupported)}; convert them to JPEG"
        )
    if ambiguous:
        problems.add(
            f"{plural(len(ambiguous), noun)} match more than one photo: "
            f"{listing(ambiguous)}; give the path relative to {root}"
        )
    if duplicates:
        problems.add(
            f"{plural(len(duplicates), 'photo')} listed more than once: {listing(duplicates)}"
        )
    for raw_label, lines in unknown.items():
        problems.add(
            f"unknown label {raw_label!r} in {plural(len(lines), noun)} "
            f"({many} {listing([str(n) for n in lines])}); expected one of {', '.join(grades)}"
            f" (a prefix such as 等級 is fine). Other grade names: give them with --grades"
        )
    problems.raise_if_any()
    if not paths:
        raise DatasetError(f"Label file {source} lists no photos.")
    unlisted = [rel_id(p, root) for p in photos if p not in first_row_of]
    said = [*notices, *ignored_notice([p for p in others if not same_file(p, source)], root)]
    if unlisted:
        said.append(
            f"{plural(len(unlisted), 'photo')} in {root} with no {noun} in {source.name}, "
            f"left out: {listing(unlisted)}"
        )
    return Found(
        root=root,
        layout="labels-csv",
        image_ids=tuple(rel_id(p, root) for p in paths),
        paths=tuple(paths),
        grades=grades,
        labels=np.asarray(labels, dtype=np.int64),
        notices=tuple(said),
    )
