"""What is in a dataset: layout, grades, sizes, duplicates, unreadable photos, groups."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..basics.progress import track
from ..data import Dataset
from ..images import BadImage, ImageDecodeError, Resize, decode, photo_size
from ..images.loader import default_workers

# Decoding at a tiny size still reads the whole stream, so a truncated file is caught,
# while reduced-size JPEG decoding keeps it fast.
_VERIFY_GEOMETRY = Resize(16)


@dataclass
class GroupSummary:
    n_groups: int
    per_grade: dict[str, int]
    photos_per_group: tuple[int, float, int]  # min, median, max
    mixed: list[str]  # groups holding photos of more than one grade


@dataclass
class Inspection:
    dataset: Dataset
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> photos
    duplicates: list[list[str]] = field(default_factory=list)
    conflicting_duplicates: list[list[str]] = field(default_factory=list)
    bad: list[BadImage] = field(default_factory=list)
    groups: GroupSummary | None = None

    @property
    def ok(self) -> bool:
        return not self.bad


def _examine(path: Path) -> tuple[tuple[int, int], str] | BadImage:
    try:
        size = photo_size(path)
        decode(path, _VERIFY_GEOMETRY)
        return size, hashlib.sha1(path.read_bytes()).hexdigest()
    except ImageDecodeError as exc:
        return BadImage(exc.path, exc.reason)


def _group_summary(dataset: Dataset) -> GroupSummary | None:
    if dataset.groups is None:
        return None
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(dataset.groups):
        members[group].append(i)
    sizes = np.array([len(m) for m in members.values()])
    per_grade = dict.fromkeys(dataset.grades, 0)
    mixed = []
    for group, idx in members.items():
        grades = {int(dataset.labels[i]) for i in idx} if dataset.labelled else set()
        if len(grades) > 1:
            mixed.append(group)
        for g in grades:
            per_grade[dataset.grades[g]] += 1
    return GroupSummary(
        n_groups=len(members),
        per_grade=per_grade,
        photos_per_group=(int(sizes.min()), float(np.median(sizes)), int(sizes.max())),
        mixed=sorted(mixed),
    )


def inspect_dataset(dataset: Dataset, progress: bool | None = None) -> Inspection:
    """Read every photo once (header, a cheap full decode, a content hash)."""
    result = Inspection(dataset=dataset, groups=_group_summary(dataset))
    by_hash: dict[str, list[int]] = defaultdict(list)
    with ThreadPoolExecutor(default_workers()) as pool:
        found = pool.map(_examine, dataset.paths)
        for i, item in enumerate(
            track(found, len(dataset), "Checking photos", progress, every=1000)
        ):
            if isinstance(item, BadImage):
                result.bad.append(item)
                continue
            size, digest = item
            result.sizes[size] += 1
            by_hash[digest].append(i)
    for idx in by_hash.values():
        if len(idx) > 1:
            names = [dataset.image_ids[i] for i in idx]
            result.duplicates.append(names)
            if dataset.labelled and len({int(dataset.labels[i]) for i in idx}) > 1:
                result.conflicting_duplicates.append(names)
    return result
