"""The layouts read from the folders alone: ``class-folders`` (one folder per grade,
grade order known or given best-first) and ``unlabelled`` (a flat folder of photos)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..basics.errors import DatasetError, listing
from .grade_names import DEFAULT_GRADES, best_first, known_order
from .photos import PHOTO_SUFFIXES, Found, globs, ignored_notice, kept, rel_id, scan
from .problems import Problems


def from_folder(
    root: Path,
    grades: tuple[str, ...] | None,
    unordered: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[Found, int]:
    """The photos found, and how many were set aside with subfolders that ``include``
    and ``exclude`` leave empty (those folders need not be grades)."""
    top_photos, top_others = scan(root, recursive=False)
    class_dirs, empty_dirs, filtered_dirs, set_aside, example = {}, [], [], 0, ""
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos, others = scan(sub, recursive=True)
        filtered = photos and (include or exclude)
        if filtered and not any(kept(rel_id(p, root), include, exclude) for p in photos):
            filtered_dirs.append(sub.name)
            set_aside += len(photos)
            example = example or rel_id(photos[0], root)
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
            f"No photo of {root} is left after {globs(include, exclude)}: the globs match "
            f"photo ids such as {example!r}."
        )
    if top_photos:
        notices = ignored_notice([p for p in top_others if p.suffix.lower() != ".csv"], root)
        if csvs:
            notices.append(
                f"No labels given, so the photos are unlabelled; found {listing(csvs)}: "
                "pass one with --labels to use its grades."
            )
        unlabelled = Found(
            root=root,
            layout="unlabelled",
            image_ids=tuple(rel_id(p, root) for p in top_photos),
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


def _from_class_folders(
    root: Path,
    class_dirs: dict[str, tuple[list[Path], list[Path]]],
    empty_dirs: list[str],
    filtered_dirs: list[str],
    top_others: list[Path],
    grades: tuple[str, ...] | None,
    csvs: list[str],
) -> Found:
    """Grades from the folders; ``filtered_dirs`` (emptied by --include/--exclude) need not
    be grades, and a grade whose folder is among them is kept with no photos."""
    names = sorted(class_dirs)
    if grades is None:
        grades = (
            known_order(set(names))
            or known_order(set(names) | set(empty_dirs))
            or known_order(set(names) | set(filtered_dirs))
        )
        if grades is None:
            hint = ""
            if csvs:
                hint = (
                    f" If {listing(csvs)} hold the grades instead, run e.g. "
                    f"`mangograde data inspect {root / names[0]} --labels {root / csvs[0]}`."
                )
            shown = names + [f"{name} (empty)" for name in empty_dirs]
            order = shlex.quote(",".join(best_first(names)))
            raise DatasetError(
                f"{root} has subfolders {listing(shown)}, not a grade order mangograde knows. "
                f"If they are grades, give them best-first, e.g. --grades {order}; if they are "
                f"classes with no order (varieties, good / bad / empty), pass --unordered.{hint}"
            )
    problems = Problems(f"the grade folders in {root}")
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
    notices = ignored_notice([p for p in others if p.suffix.lower() != ".csv"], root)
    return Found(
        root=root,
        layout="class-folders",
        image_ids=tuple(rel_id(p, root) for p in paths),
        paths=tuple(paths),
        grades=tuple(grades),
        labels=np.asarray(labels, dtype=np.int64),
        notices=tuple(notices),
    )
