"""``mangograde suggest``: the photos (or fruits) to label next, for a run to learn the
most from the fewest labels (:mod:`mangograde.evaluation.selection`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import SettingsError, plural
from ..data import find_photos
from ..data.fruit_ids import fruits_from_csv
from ..evaluation.selection import Picked, pick, pooled, standardised, uncertainty
from ..graders import Grader, grade_batch, sha256
from ..images import ImageCache
from .predict import decode_photos


@dataclass
class Suggestion:
    items: list[str]  # image ids, or fruit names with --groups
    photos: list[list[str]]  # each item's photos
    grades: list[str]  # the run's grade of each item
    top: np.ndarray  # each item's top probability
    unsure: np.ndarray  # each item's uncertainty
    picked: Picked
    labelled: int = 0  # items left out as already labelled
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Labelled:
    """Photos already labelled: by name, and by the SHA-256 of their bytes (``data labels``
    renames the photos it copies, so a name alone would miss them)."""

    names: frozenset[str] = frozenset()
    sha256s: frozenset[str] = frozenset()

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def has(self, name: str, path: Path) -> bool:
        return name in self.names or (bool(self.sha256s) and sha256(path) in self.sha256s)


def read_labelled(path: Path) -> Labelled:
    """The photos a CSV lists in its first column (a header row is allowed), by name and
    by content: a ``sha256`` column, or the listed files found beside the CSV (or in its
    ``images/`` folder, as ``data labels`` writes them)."""
    if not path.is_file():
        raise SettingsError(f"--labelled {path}: no such file (a CSV whose first column is "
                            "the image id, as labels.csv).")  # fmt: skip
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    column = header.index("sha256") if "sha256" in header else None
    ids = {row[0].strip() for row in rows}
    ids.discard("image_id")
    names = {Path(i.replace("\\", "/")).name for i in ids}
    sha256s = {row[column].strip().lower() for row in rows[1:]
               if column is not None and len(row) > column}  # fmt: skip
    for name in ids:
        for place in (path.parent / name, path.parent / "images" / Path(name).name):
            if place.is_file():
                sha256s.add(sha256(place))
                break
    return Labelled(frozenset(names), frozenset(sha256s))


def suggest(
    predictor: Grader,
    inputs: Sequence[str | Path],
    n: int,
    labelled: Labelled | set[str] | None = None,
    groups: Path | None = None,
    by: str = "margin",
    duplicate: float = 0.25,
    cache: ImageCache | None = None,
    progress: bool | None = None,
) -> Suggestion:
    """Rank ``inputs`` for labelling with a run's predictor: the ``n`` least sure photos
    (fruits, with ``groups``), spread over the run's features, none already ``labelled``
    (image ids, or a :class:`Labelled`: by name or content) and no two near-duplicates."""
    paths, ids, notices = find_photos(inputs)
    fruit_ids = None
    if groups is not None:
        fruit_ids, found = fruits_from_csv(paths, ids, groups)
        notices += found
    images, kept, _, load_notices = decode_photos(predictor, paths, cache, False, progress)
    ids = [ids[i] for i in kept]
    kept_fruits = None if fruit_ids is None else [fruit_ids[i] for i in kept]
    graded = grade_batch(predictor, images, ids, kept_fruits, progress=progress, embed=True)
    proba, features, found = graded.proba, graded.features, graded.as_fruits()
    fruits = found.fruits
    members = [fruits.photos_of(j) for j in range(len(fruits.names))]
    known = labelled if isinstance(labelled, Labelled) else Labelled(frozenset(labelled or ()))
    kept_paths = [paths[i] for i in kept]
    done = np.array([any(known.has(ids[i], kept_paths[i]) for i in rows) for rows in members])
    unsure = np.array([uncertainty(proba[rows], by).mean() for rows in members])
    if features is None:
        features = [found.proba]  # no features: spread over the grade probabilities
        notices.append("This run's family gives no features: the photos are spread over "
                       "their grade probabilities instead.")  # fmt: skip
    items = pooled(standardised(features), members)
    pool = np.flatnonzero(~done)
    if len(pool) == 0:
        what = plural(len(done), "photo" if fruit_ids is None else "fruit")
        raise SettingsError(f"Every one of the {what} is already labelled: nothing to suggest.")
    picked = pick(unsure[pool], [f[pool] for f in items], min(n, len(pool)),
                  [f[done] for f in items], duplicate)  # fmt: skip
    picked = Picked([int(pool[i]) for i in picked.order], picked.distance,
                    {int(pool[k]): (int(pool[v]) if v >= 0 else -1)
                     for k, v in picked.duplicates.items()}, picked.threshold)  # fmt: skip
    grades = [predictor.grades[int(c)] for c in found.predicted]
    photos = [[ids[i] for i in rows] for rows in members]
    return Suggestion(list(fruits.names), photos, grades, found.proba.max(axis=1), unsure,
                      picked, int(done.sum()), notices + load_notices)  # fmt: skip


def write_pick(path: Path, found: Suggestion, fruits: bool) -> Path:
    """One row a pick, first first: the item, its photos, the run's grade and how sure."""
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        head = ["rank", "fruit", "photos"] if fruits else ["rank", "image_id"]
        writer.writerow([*head, "grade", "top_probability", "uncertainty", "distance"])
        for rank, (j, gap) in enumerate(zip(found.picked.order, found.picked.distance,
                                            strict=True), 1):  # fmt: skip
            item = [found.items[j], ";".join(found.photos[j])] if fruits else [found.items[j]]
            writer.writerow([rank, *item, found.grades[j], f"{found.top[j]:.4f}",
                             f"{found.unsure[j]:.4f}",
                             "" if not np.isfinite(gap) else f"{gap:.4f}"])  # fmt: skip
    return path
