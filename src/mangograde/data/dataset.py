"""Find photos, their grades and their fruit groups in the layouts users bring.

Three layouts load without editing:

* ``labels-csv``: a folder of photos plus a label CSV (the AI CUP format);
* ``class-folders``: one folder per grade, grade order given best-first;
* ``unlabelled``: a flat folder of photos, for prediction.

This module only finds files and reads text; it never decodes a photo.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from ..basics.errors import DatasetError, listing, plural
from ..basics.outputs import same_file
from .csvfile import find_column, read_rows

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_GRADES = ("A", "B", "C")
# Grade orders recognised without --grades (best first).
KNOWN_GRADE_ORDERS = (
    ("A", "B", "C"),
    ("Extra_Class", "Class_I", "Class_II"),
)
# "等級A" is how the competition's CSV spells grade A.
LABEL_PREFIXES = ("等級", "grade_", "grade ", "grade")
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}
IMAGE_COLUMNS = ("image_id", "image", "filename", "file", "path", "photo", "img")
LABEL_COLUMNS = ("label", "grade", "class", "等級")
GROUP_COLUMNS = ("group", "group_id", "fruit_id", "fruit", "groups")
FOLDER_COLUMNS = ("grade_folder", "folder", "class_folder", "subfolder")
KNOWN_COLUMNS = frozenset(IMAGE_COLUMNS + LABEL_COLUMNS + GROUP_COLUMNS + FOLDER_COLUMNS)


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
        keep = [i for i, image_id in enumerate(self.image_ids) if _kept(image_id, include, exclude)]
        if not keep:
            raise DatasetError(
                f"No photo of {self.root} is left after {_globs(include, exclude)}: the globs "
                f"match photo ids such as {self.image_ids[0]!r}."
            )
        total = len(self) + set_aside
        return self.subset(keep), [
            f"{len(keep)} of {total} photos kept ({_globs(include, exclude)})."
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


class _Problems:
    """Collects every problem so the user sees them all in one message."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, advice: str = "") -> None:
        if self.items:
            lines = "\n".join(f"  - {item}" for item in self.items)
            tail = f"\n{advice}" if advice else ""
            raise DatasetError(f"Cannot load {self.what}:\n{lines}{tail}")


def _kept(image_id: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    return (not include or any(fnmatch(image_id, g) for g in include)) and not any(
        fnmatch(image_id, g) for g in exclude
    )


def _globs(include: Sequence[str], exclude: Sequence[str]) -> str:
    return " ".join([*(f"--include {g}" for g in include), *(f"--exclude {g}" for g in exclude)])


def load_dataset(
    data: str | Path,
    labels: str | Path | None = None,
    groups: str | Path | None = None,
    grades: Sequence[str] | None = None,
    allow_single_grade: bool = False,
    unordered: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Dataset:
    """Load a dataset in any supported layout.

    Parameters
    ----------
    data : folder of photos (with ``labels``), of grade folders, or of unlabelled photos.
    labels : label CSV (``image_id,label``; header optional; UTF-8, BOM or Big5).
    groups : CSV mapping photos to fruits (``image,group`` or ``image,...,fruit_id``).
    grades : grade names best-first; needed for class folders with unfamiliar names.
    allow_single_grade : accept a labelled set holding a single grade (e.g. to evaluate).
    unordered : the labels are classes with no order (varieties, good / bad / empty):
        without ``grades``, they are taken in alphabetical order, as they come.
    include, exclude : globs on photo ids (``Class_I/*``): only the photos that match an
        ``include`` (when any) and no ``exclude``. A grade folder they leave empty need not
        be a grade; a grade they leave without photos drops out of ``grades`` (a notice
        says so).

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
        _check_grade_names(grade_names)
    set_aside = 0
    if labels is not None:
        dataset = _from_label_csv(root, Path(labels).expanduser(), grade_names, unordered)
    else:
        dataset, set_aside = _from_folder(root, grade_names, unordered, include, exclude)
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
            image_ids=tuple(_under(path, folders) for path in paths),
            paths=tuple(Path(str(i)) for i in range(len(paths))),  # each photo's index
            grades=DEFAULT_GRADES,
            groups=None if groups is None else tuple(groups),
        )
        found, notices = found.selected(self.include, self.exclude)
        if self.sample is not None:
            found, sampled = found.sampled(self.sample, self.seed)
            notices += sampled
        return [int(p.name) for p in found.paths], notices


def _under(path: Path, folders: Sequence[Path]) -> str:
    """``path`` under the first of ``folders`` that holds it, or its file name."""
    for folder in folders:
        if str(path).startswith(str(folder) + os.sep):
            return _rel(path, folder)
    return path.name


_MARKUP = re.compile(r"[<>\x00-\x1f]")


def grade_names_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a saved list of grade names, or None."""
    if not isinstance(value, list) or len(value) < 2:
        return "two or more names are needed"
    if not all(isinstance(g, str) and g.strip() for g in value):
        return "each must be a name"
    if len(set(value)) != len(value):
        return "a name is repeated"
    if any(_MARKUP.search(g) for g in value):
        return "names hold no < > or control characters"
    return None


def _check_grade_names(grades: tuple[str, ...]) -> None:
    repeated = [g for g, n in Counter(grades).items() if n > 1]
    if repeated or len(grades) < 2 or any(not g for g in grades):
        raise DatasetError(
            f"--grades {','.join(grades)} is not a list of two or more distinct names, "
            "best first (e.g. --grades A,B,C)."
        )


def _scan(folder: Path, recursive: bool) -> tuple[list[Path], list[Path]]:
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
    return sorted(photos, key=lambda p: _rel(p, folder)), sorted(others, key=os.fspath)


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
            found, others = _scan(item, recursive=True)
            add(found, [_rel(p, item) for p in found])
            notices += _ignored_notice(others, item)
        elif item.is_file():
            if _has_photo_suffix(item.name):
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


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (string slicing: pathlib is slow)."""
    text, prefix = str(path), str(root) + os.sep
    if text.startswith(prefix):
        return text[len(prefix) :].replace(os.sep, "/")
    return path.relative_to(root).as_posix()


def _ignored_notice(others: list[Path], root: Path) -> list[str]:
    if not others:
        return []
    names = [_rel(p, root) for p in others]
    return [
        f"{plural(len(names), 'file')} ignored, not a supported photo type "
        f"({', '.join(PHOTO_SUFFIXES)}): {listing(names)}"
    ]


def _from_folder(
    root: Path,
    grades: tuple[str, ...] | None,
    unordered: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[Dataset, int]:
    """The dataset, and how many photos were set aside with subfolders that ``include``
    and ``exclude`` leave empty (those folders need not be grades)."""
    top_photos, top_others = _scan(root, recursive=False)
    class_dirs, empty_dirs, filtered_dirs, set_aside, example = {}, [], [], 0, ""
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos, others = _scan(sub, recursive=True)
        filtered = photos and (include or exclude)
        if filtered and not any(_kept(_rel(p, root), include, exclude) for p in photos):
            filtered_dirs.append(sub.name)
            set_aside += len(photos)
            example = example or _rel(photos[0], root)
            continue
        if photos:
            class_dirs[sub.name] = (photos, others)
        else:
            empty_dirs.append(sub.name)
    csvs = sorted(p.name for p in root.glob("*.csv"))
    if top_photos and class_dirs:
        raise DatasetError(
            f"{root} holds photos both directly inside it and in subfolders "
            f"({listing(sorted(class_dirs))}). Use one layout: grade subfolders, or one folder "
            "of photos with a label CSV (--labels)."
        )
    if class_dirs:
        if grades is None and unordered:
            grades = tuple(sorted(class_dirs, key=str.lower))
        found = _from_class_folders(
            root, class_dirs, empty_dirs, filtered_dirs, top_others, grades, csvs
        )
        return found, set_aside
    if filtered_dirs and not top_photos:
        raise DatasetError(
            f"No photo of {root} is left after {_globs(include, exclude)}: the globs match "
            f"photo ids such as {example!r}."
        )
    if top_photos:
        notices = _ignored_notice([p for p in top_others if p.suffix.lower() != ".csv"], root)
        if csvs:
            notices.append(
                f"No labels given, so the photos are unlabelled; found {listing(csvs)}: "
                "pass one with --labels to use its grades."
            )
        unlabelled = Dataset(
            root=root,
            layout="unlabelled",
            image_ids=tuple(_rel(p, root) for p in top_photos),
            paths=tuple(top_photos),
            grades=grades or DEFAULT_GRADES,
            notices=tuple(notices),
        )
        return unlabelled, set_aside
    hint = (
        f" Found {listing(csvs)}: pass the photo folder as DATA and the CSV with --labels."
        if (csvs)
        else ""
    )
    raise DatasetError(
        f"No photos found in {root} (looked for {', '.join(PHOTO_SUFFIXES)}, also in "
        f"subfolders).{hint}"
    )


_BETTER = ("extra", "premium", "best", "good", "high", "first", "top", "fresh", "healthy")
_WORSE = ("bad", "poor", "reject", "worst", "low", "rotten", "defect", "damaged", "diseased")


def _best_first(names: Sequence[str]) -> list[str]:
    """A guess at best-first for a suggestion: names that say good before plain ones,
    names that say bad last (``good_quality`` before ``bad_quality``)."""

    def rank(name: str) -> int:
        words = name.lower()
        return -1 if any(w in words for w in _BETTER) else int(any(w in words for w in _WORSE))

    return sorted(names, key=rank)


def _known_order(names: set[str]) -> tuple[str, ...] | None:
    for order in KNOWN_GRADE_ORDERS:
        by_lower = {n.lower(): n for n in names}
        if set(by_lower) == {g.lower() for g in order}:
            return tuple(by_lower[g.lower()] for g in order)
    return None


def _from_class_folders(
    root: Path,
    class_dirs: dict[str, tuple[list[Path], list[Path]]],
    empty_dirs: list[str],
    filtered_dirs: list[str],
    top_others: list[Path],
    grades: tuple[str, ...] | None,
    csvs: list[str],
) -> Dataset:
    """Grades from the folders; ``filtered_dirs`` (emptied by --include/--exclude) need not
    be grades, and a grade whose folder is among them is kept with no photos."""
    names = sorted(class_dirs)
    if grades is None:
        grades = (
            _known_order(set(names))
            or _known_order(set(names) | set(empty_dirs))
            or _known_order(set(names) | set(filtered_dirs))
        )
        if grades is None:
            hint = ""
            if csvs:
                hint = (
                    f" If {listing(csvs)} hold the grades instead, run e.g. "
                    f"`mangograde data inspect {root / names[0]} --labels {root / csvs[0]}`."
                )
            shown = names + [f"{name} (empty)" for name in empty_dirs]
            order = shlex.quote(",".join(_best_first(names)))
            raise DatasetError(
                f"{root} has subfolders {listing(shown)}, not a grade order mangograde knows. "
                f"If they are grades, give them best-first, e.g. --grades {order}; if they are "
                f"classes with no order (varieties, good / bad / empty), pass --unordered.{hint}"
            )
    problems = _Problems(f"the grade folders in {root}")
    for grade in grades:
        if grade in empty_dirs:
            problems.add(f"the folder of grade {grade!r} holds no photos")
        elif grade not in class_dirs and grade not in filtered_dirs:
            problems.add(f"no folder of photos for grade {grade!r} (found {listing(names)})")
    for name in names:
        if name not in grades:
            problems.add(
                f"folder {name!r} is not one of the grades {', '.join(grades)}: add it to "
                "--grades or move it out of DATA"
            )
    problems.raise_if_any()
    paths, labels, others = [], [], list(top_others)
    for index, grade in enumerate(grades):
        photos, extra = class_dirs.get(grade, ([], []))
        paths += photos
        labels += [index] * len(photos)
        others += extra
    notices = _ignored_notice([p for p in others if p.suffix.lower() != ".csv"], root)
    return Dataset(
        root=root,
        layout="class-folders",
        image_ids=tuple(_rel(p, root) for p in paths),
        paths=tuple(paths),
        grades=tuple(grades),
        labels=np.asarray(labels, dtype=np.int64),
        notices=tuple(notices),
    )


def _has_photo_suffix(name: str) -> bool:
    return name.lower().endswith(PHOTO_SUFFIXES)


def normalise_label(text: str) -> str:
    """``'等級A'`` -> ``'a'``; compare the result with lower-cased grade names."""
    label = text.strip()
    lowered = label.lower()
    for prefix in LABEL_PREFIXES:
        if lowered.startswith(prefix) and len(label) > len(prefix):
            label = label[len(prefix) :].strip()
            break
    return label.lower()


def _split_header(
    rows: list[tuple[int, list[str]]],
    index: _PhotoIndex,
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
    cannot_be_data = not index.find(first[0]) and not _has_photo_suffix(first[0])
    if not named and (is_data or not cannot_be_data):
        return rows, [None] * len(columns), False
    return rows[1:], [find_column(first, names) for names in columns], True


class _PhotoIndex:
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


def _from_label_csv(
    root: Path, csv_path: Path, grades: tuple[str, ...] | None, unordered: bool = False
) -> Dataset:
    if not csv_path.is_file():
        raise DatasetError(f"Label file {csv_path} does not exist.")
    rows = read_rows(csv_path)
    if not rows:
        raise DatasetError(f"Label file {csv_path} has no rows. Expected lines image_id,label.")
    photos, others = _scan(root, recursive=True)
    index = _PhotoIndex([_rel(p, root) for p in photos], photos)
    unreadable = _PhotoIndex([_rel(p, root) for p in others], others)
    first = rows[0][1]
    if grades is None and unordered:  # the classes are whatever the labels say
        is_data = not ({cell.lower() for cell in first} & KNOWN_COLUMNS)
    else:
        grades = grades or DEFAULT_GRADES
        known = {g.lower() for g in grades} | {normalise_label(g) for g in grades}
        is_data = len(first) > 1 and normalise_label(first[1]) in known
    rows, (image_col, label_col), _ = _split_header(
        rows, index, (IMAGE_COLUMNS, LABEL_COLUMNS), is_data=is_data
    )
    image_col = 0 if image_col is None else image_col
    label_col = 1 if label_col is None else label_col
    if grades is None:
        found = {cells[label_col] for _, cells in rows if len(cells) > label_col}
        grades = tuple(sorted(found - {""}, key=str.lower))
    grade_of = {g.lower(): i for i, g in enumerate(grades)}
    grade_of.update({normalise_label(g): i for i, g in enumerate(grades)})
    problems = _Problems(f"the labels in {csv_path} for photos in {root}")
    short, missing, unknown, ambiguous, unsupported = [], [], defaultdict(list), [], []
    first_row_of: dict[Path, int] = {}
    duplicates = []
    paths, labels = [], []
    for line, cells in rows:
        if len(cells) <= max(image_col, label_col):
            short.append(line)
            continue
        image_id, raw_label = cells[image_col], cells[label_col]
        label = grade_of.get(normalise_label(raw_label))
        if label is None:
            unknown[raw_label].append(line)
        found = index.find(image_id)
        if not found:
            wrong_type = unreadable.find(image_id)
            (unsupported if wrong_type else missing).append(f"row {line} {image_id}")
            continue
        if len(found) > 1:
            ambiguous.append(f"row {line} {image_id} ({listing([_rel(p, root) for p in found])})")
            continue
        path = found[0]
        if path in first_row_of:
            duplicates.append(f"{image_id} (rows {first_row_of[path]} and {line})")
            continue
        first_row_of[path] = line
        if label is not None:
            paths.append(path)
            labels.append(label)
    if short:
        problems.add(
            f"{plural(len(short), 'row')} with fewer than {max(image_col, label_col) + 1} "
            f"columns (lines {listing([str(n) for n in short])}); expected image_id,label"
        )
    if missing:
        problems.add(
            f"{plural(len(missing), 'row')} name photos that are not in {root}: {listing(missing)}"
        )
    if unsupported:
        problems.add(
            f"{plural(len(unsupported), 'row')} name files of a type mangograde does not read "
            f"({', '.join(PHOTO_SUFFIXES)}): {listing(unsupported)}; convert them to JPEG"
        )
    if ambiguous:
        problems.add(
            f"{plural(len(ambiguous), 'row')} match more than one photo: "
            f"{listing(ambiguous)}; give the path relative to {root}"
        )
    if duplicates:
        problems.add(
            f"{plural(len(duplicates), 'photo')} listed more than once: {listing(duplicates)}"
        )
    for raw_label, lines in unknown.items():
        problems.add(
            f"unknown label {raw_label!r} in {plural(len(lines), 'row')} "
            f"(lines {listing([str(n) for n in lines])}); expected one of {', '.join(grades)}"
            f" (a prefix such as 等級 is fine). Other grade names: give them with --grades"
        )
    problems.raise_if_any()
    if not paths:
        raise DatasetError(f"Label file {csv_path} lists no photos.")
    unlisted = [_rel(p, root) for p in photos if p not in first_row_of]
    notices = _ignored_notice([p for p in others if not same_file(p, csv_path)], root)
    if unlisted:
        notices.append(
            f"{plural(len(unlisted), 'photo')} in {root} with no row in {csv_path.name}, "
            f"left out: {listing(unlisted)}"
        )
    return Dataset(
        root=root,
        layout="labels-csv",
        image_ids=tuple(_rel(p, root) for p in paths),
        paths=tuple(paths),
        grades=grades,
        labels=np.asarray(labels, dtype=np.int64),
        notices=tuple(notices),
    )


def attach_groups(dataset: Dataset, groups_csv: Path, complete: bool = True) -> Dataset:
    """Give every photo its fruit group from ``groups_csv``.

    Every photo must have a group (a split that guesses could leak one fruit into two
    folds); rows for photos outside the dataset are reported and ignored. With
    ``complete=False`` (grading, not splitting) a photo without a row gets the group ``""``:
    a fruit of its own.
    """
    if not groups_csv.is_file():
        raise DatasetError(f"Groups file {groups_csv} does not exist.")
    rows = read_rows(groups_csv)
    if not rows:
        raise DatasetError(f"Groups file {groups_csv} has no rows. Expected lines image,group.")
    index = _PhotoIndex(dataset.image_ids, dataset.paths)
    width = len(rows[0][1])
    rows, (image_col, group_col, folder_col), had_header = _split_header(
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
    problems = _Problems(f"the groups in {groups_csv}")
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
    no_group = [
        name for name, p in zip(dataset.image_ids, dataset.paths, strict=True) if p not in group_of
    ]
    if no_group and complete:
        problems.add(
            f"{plural(len(no_group), 'photo')} of the dataset have no group: {listing(no_group)}; "
            "add a row for each"
        )
    problems.raise_if_any()
    notices = list(dataset.notices)
    if outside:
        notices.append(
            f"{plural(len(outside), 'row')} of {groups_csv.name} name photos not in this "
            f"dataset (ignored), e.g. {listing(outside, 3)}"
        )
    return replace(
        dataset,
        groups=tuple(group_of[p][0] if p in group_of else "" for p in dataset.paths),
        notices=tuple(notices),
    )
