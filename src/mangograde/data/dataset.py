"""The ``Dataset`` type: photos with their grades and fruit groups, found in the layouts
users bring, and what makes one.

Three layouts load without editing:

* ``labels-csv``: a folder of photos plus a label CSV (the AI CUP format,
  ``label_csv.py``) or a Label Studio export (JSON, JSON_MIN, CSV: ``label_studio.py``);
* ``class-folders``: one folder per grade, grade order given best-first
  (``folder_layouts.py``);
* ``unlabelled``: a flat folder of photos, for prediction (``folder_layouts.py``).

``load_dataset`` reads any of them, with fruit groups from a CSV (``groups.py``);
``PhotoChoice`` chooses among photo files given one by one. Finding photos is in
``photos.py``, grade names and orders in ``grade_names.py``. These modules only find
files and read text; they never decode a photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..basics.errors import DatasetError, listing, plural
from .csv_columns import (
    FOLDER_COLUMNS,
    GROUP_COLUMNS,
    IMAGE_COLUMNS,
    KNOWN_COLUMNS,
    LABEL_COLUMNS,
)
from .folder_layouts import from_folder
from .grade_names import (
    DEFAULT_GRADES,
    KNOWN_GRADE_ORDERS,
    LABEL_PREFIXES,
    check_grade_names,
    grade_names_problem,
    normalise_label,
)
from .groups import read_groups
from .label_csv import from_label_csv
from .label_studio import from_export, is_label_studio
from .photos import PHOTO_SUFFIXES, SYSTEM_FILES, Found, find_photos, globs, id_under, kept

__all__ = [
    "DEFAULT_GRADES",
    "FOLDER_COLUMNS",
    "GROUP_COLUMNS",
    "IMAGE_COLUMNS",
    "KNOWN_COLUMNS",
    "KNOWN_GRADE_ORDERS",
    "LABEL_COLUMNS",
    "LABEL_PREFIXES",
    "PHOTO_SUFFIXES",
    "SYSTEM_FILES",
    "Dataset",
    "PhotoChoice",
    "attach_groups",
    "find_photos",
    "grade_names_problem",
    "load_dataset",
    "normalise_label",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Photos with (optional) grades and fruit groups, in a fixed order.

    ``labels[i]`` is the index of photo ``i``'s grade in ``grades`` (0 = best).
    ``notices`` holds what was found and not fatal (e.g. photos with no CSV row).
    """

    root: Path
    layout: str
    image_ids: tuple[str, ...]
    paths: tuple[Path, ...]
    grades: tuple[str, ...]
    labels: np.ndarray | None = None
    groups: tuple[str, ...] | None = None
    notices: tuple[str, ...] = field(default=())
    ordered: bool = True  # grades best-first; False: classes with no order
    auto_groups: bool = False  # --groups auto: fruits found in the photos once decoded

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def grade_counts(self) -> dict[str, int]:
        """Photos per grade, in grade order (all zero when unlabelled)."""
        counts = np.bincount(self.labels, minlength=len(self.grades)) if self.labelled else None
        return {g: int(counts[i]) if counts is not None else 0 for i, g in enumerate(self.grades)}

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """The photos at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=int)
        return replace(
            self,
            image_ids=tuple(self.image_ids[i] for i in idx),
            paths=tuple(self.paths[i] for i in idx),
            labels=None if self.labels is None else self.labels[idx],
            groups=None if self.groups is None else tuple(self.groups[i] for i in idx),
        )

    def selected(
        self, include: Sequence[str] = (), exclude: Sequence[str] = (), set_aside: int = 0
    ) -> tuple[Dataset, list[str]]:
        """Only the photos whose id (e.g. ``Class_I/img_1.jpg``) matches an ``include``
        glob (when any is given) and no ``exclude`` glob; and a notice of what was left out.
        ``set_aside``: photos the same globs already left out with their whole folder."""
        if not include and not exclude:
            return self, []
        keep = [i for i, image_id in enumerate(self.image_ids) if kept(image_id, include, exclude)]
        if not keep:
            raise DatasetError(
                f"No photo of {self.root} is left after {globs(include, exclude)}: the globs "
                f"match photo ids such as {self.image_ids[0]!r}."
            )
        total = len(self) + set_aside
        return self.subset(keep), [
            f"{len(keep)} of {total} photos kept ({globs(include, exclude)})."
        ]

    def without_empty_grades(self) -> tuple[Dataset, list[str]]:
        """The same photos with the grades that hold none of them left out of ``grades``."""
        counts = self.grade_counts()
        empty = [g for g, n in counts.items() if n == 0]
        if not self.labelled or not empty:
            return self, []
        left = tuple(g for g in self.grades if counts[g])
        word = "grade" if self.ordered else "class"
        notice = (
            f"{listing(empty)} {'has' if len(empty) == 1 else 'have'} no photo left after "
            f"the filters and {'is' if len(empty) == 1 else 'are'} left out: the {word}s "
            f"are {', '.join(left)}."
        )
        return self.in_grade_order(left), [notice]

    def sampled(self, n: int, seed: int = 0) -> tuple[Dataset, list[str]]:
        """About ``n`` photos, whole fruits at a time, in each grade's share (seeded)."""
        if n < 1:
            raise DatasetError(f"--sample must be at least 1, got {n}.")
        if n >= len(self):
            return self, []
        from .splits import holdout

        labels = self.labels if self.labels is not None else np.zeros(len(self), dtype=np.int64)
        _, chosen = holdout(labels, n / len(self), self.groups, seed)
        kept = self.subset(np.sort(chosen))
        how = "whole fruits" if self.groups is not None else "photos"
        share = ", each grade in its share" if self.labelled else ""
        return kept, [
            f"A sample of {len(kept)} of {len(self)} photos (--sample {n}: {how}{share}, "
            f"seed {seed})."
        ]

    def in_grade_order(self, order: tuple[str, ...]) -> Dataset:
        """The same photos with their labels coded by ``order`` (which holds every grade
        of this dataset, perhaps more)."""
        code = {g: i for i, g in enumerate(order)}
        labels = (
            None
            if self.labels is None
            else np.array([code[self.grades[c]] for c in self.labels], dtype=np.int64)
        )
        return replace(self, grades=order, labels=labels)

    def with_copies_grouped(self, copies: Sequence[Sequence[int]]) -> Dataset:
        """The dataset with each set of ``copies`` (photo indices) in one fruit group, and
        the groups they belonged to merged (a photo without a group is its own fruit)."""
        if not copies:
            return self
        groups = list(self.groups) if self.groups is not None else list(self.image_ids)
        parent = {g: g for g in groups}

        def root(g: str) -> str:
            while parent[g] != g:
                g = parent[g]
            return g

        for indices in copies:
            first = root(groups[indices[0]])
            for i in indices[1:]:
                parent[root(groups[i])] = first
        return replace(self, groups=tuple(root(g) for g in groups))


def load_dataset(
    data: str | Path,
    labels: str | Path | None = None,
    groups: str | Path | None = None,
    grades: Sequence[str] | None = None,
    allow_single_grade: bool = False,
    unordered: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    annotations: str = "latest",
) -> Dataset:
    """Load a dataset in any supported layout.

    Parameters
    ----------
    data : folder of photos (with ``labels``), of grade folders, or of unlabelled photos.
    labels : label CSV (``image_id,label``; header optional; UTF-8, BOM or Big5), or
        Label Studio's JSON, JSON_MIN or CSV export (``label_studio.py``).
    groups : CSV mapping photos to fruits (``image,group`` or ``image,...,fruit_id``).
    grades : grade names best-first; needed for class folders with unfamiliar names.
    allow_single_grade : accept a labelled set holding a single grade (e.g. to evaluate).
    unordered : the labels are classes with no order (varieties, good / bad / empty):
        without ``grades``, they are taken in alphabetical order, as they come.
    include, exclude : globs on photo ids (``Class_I/*``): only the photos that match an
        ``include`` (when any) and no ``exclude``. A grade folder they leave empty need not
        be a grade; a grade they leave without photos drops out of ``grades`` (a notice
        says so).
    annotations : with a Label Studio export, the grade of a task with several
        annotations: ``latest`` (the last updated) or ``majority`` (a tie is an error).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Naming every missing photo, unknown label, duplicate or unreadable file.
    """
    root = Path(data).expanduser()
    if not root.exists():
        raise DatasetError(f"{root} does not exist. DATA must be a folder of photos.")
    if not root.is_dir():
        hint = (
            f" To use it as labels: mangograde ... {root.parent} --labels {root}"
            if (root.suffix.lower() == ".csv")
            else ""
        )
        raise DatasetError(f"{root} is a file; DATA must be a folder of photos.{hint}")
    grade_names = tuple(grades) if grades else None
    if grade_names is not None:
        check_grade_names(grade_names)
    set_aside = 0
    if labels is not None:
        label_file = Path(labels).expanduser()
        if is_label_studio(label_file):
            found = from_export(root, label_file, grade_names, unordered, annotations)
        else:
            found = from_label_csv(root, label_file, grade_names, unordered)
    else:
        found, set_aside = from_folder(root, grade_names, unordered, include, exclude)
    dataset = _from_found(found)
    if unordered:
        dataset = replace(dataset, ordered=False)
    if groups is not None:
        dataset = attach_groups(dataset, Path(groups).expanduser())
    dataset, chosen = dataset.selected(include, exclude, set_aside)
    if chosen:
        dataset, dropped = dataset.without_empty_grades()
        dataset = replace(dataset, notices=(*dataset.notices, *chosen, *dropped))
    if dataset.labelled and not allow_single_grade:
        present = [g for g, n in dataset.grade_counts().items() if n]
        if len(present) < 2:
            raise DatasetError(
                f"Only grade {present[0]} found among {plural(len(dataset), 'photo')} in {root}: "
                "grading needs photos of at least two grades. Check the labels or --grades."
            )
    return dataset


@dataclass(frozen=True)
class PhotoChoice:
    """--include / --exclude globs on photo ids and --sample N (seeded) for commands that
    take photo files and folders rather than a dataset."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sample: int | None = None
    seed: int = 0

    def apply(
        self,
        inputs: Sequence[str | Path],
        paths: Sequence[Path],
        groups: Sequence[str] | None = None,
    ) -> tuple[list[int], list[str]]:
        """Which of ``paths`` (found in ``inputs``) are kept, as indices in order, and
        notices saying so. A glob matches a photo's path under the folder given
        (``Class_I/img_1.jpg``) or its file name; ``groups`` keeps a fruit's photos together."""
        folders = [Path(i) for i in inputs if Path(i).is_dir()]
        found = Dataset(
            root=folders[0] if len(inputs) == 1 and folders else Path("."),
            layout="unlabelled",
            image_ids=tuple(id_under(path, folders) for path in paths),
            paths=tuple(Path(str(i)) for i in range(len(paths))),  # each photo's index
            grades=DEFAULT_GRADES,
            groups=None if groups is None else tuple(groups),
        )
        found, notices = found.selected(self.include, self.exclude)
        if self.sample is not None:
            found, sampled = found.sampled(self.sample, self.seed)
            notices += sampled
        return [int(p.name) for p in found.paths], notices


def attach_groups(dataset: Dataset, groups_csv: Path, complete: bool = True) -> Dataset:
    """Give every photo its fruit group from ``groups_csv``.

    Every photo must have a group (a split that guesses could leak one fruit into two
    folds); rows for photos outside the dataset are reported and ignored. With
    ``complete=False`` (grading, not splitting) a photo without a row gets the group ``""``:
    a fruit of its own.
    """
    groups, notices = read_groups(dataset.image_ids, dataset.paths, groups_csv, complete)
    return replace(dataset, groups=groups, notices=(*dataset.notices, *notices))


def _from_found(found: Found) -> Dataset:
    return Dataset(
        root=found.root,
        layout=found.layout,
        image_ids=found.image_ids,
        paths=found.paths,
        grades=found.grades,
        labels=found.labels,
        notices=found.notices,
    )
