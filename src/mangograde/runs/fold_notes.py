"""What a fold's fit had to say, said once for the run in the tool's own words.

A family warns (``warnings.warn``) when it has to bend a setting to the photos it got (an
SVM keeping fewer PCA components than asked, on a small fold). Printed as Python prints
warnings, that is one line a fold with a file path inside the package; here it becomes
one note for the run, saying in how many folds it happened.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PACKAGE = str(Path(__file__).resolve().parents[1])
FEW_A_GRADE = 10  # photos of a grade in a fold's training set below which scores wobble


@contextmanager
def fold_notes() -> Iterator[list[str]]:
    """Collect the package's own ``UserWarning``s raised inside the block as notes (the
    yielded list); any other warning is passed on as it came."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    for found in caught:
        ours = issubclass(found.category, UserWarning) and str(found.filename).startswith(PACKAGE)
        if ours:
            notes.append(str(found.message))
        else:
            warnings.warn_explicit(found.message, found.category, found.filename, found.lineno)


def run_notes(per_fold: Sequence[Sequence[str]]) -> list[str]:
    """One note per kind of message (messages that differ only in their numbers are one
    kind), the first fold's wording, and in how many folds it came."""
    kinds: dict[str, tuple[str, set[int]]] = {}
    for fold, notes in enumerate(per_fold):
        for note in notes:
            text, folds = kinds.setdefault(re.sub(r"\d+", "#", note), (note, set()))
            folds.add(fold)
    if len(per_fold) == 1:
        return [text for text, _ in kinds.values()]
    return [f"{text} (in {len(folds)} of {len(per_fold)} folds)" for text, folds in kinds.values()]


def few_photos_note(
    labels: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    grades: Sequence[str],
    kind: str = "grade",
) -> list[str]:
    """A note when some fold trains on fewer than about 10 photos of a grade (``kind``:
    what the labels are called, grade or class)."""
    counts = np.array([np.bincount(labels[train], minlength=len(grades)) for train, _ in splits])
    fewest = counts.min(axis=0)
    if fewest.min() >= FEW_A_GRADE:
        return []
    grade = int(fewest.argmin())
    held = sum(len(test) for _, test in splits)
    return [
        f"Few photos: a fold trains on only {int(fewest[grade])} photos of {grades[grade]} "
        f"(about {FEW_A_GRADE} a {kind} a fold is the least for the scores to mean much); the "
        f"accuracy rests on {held} held-out photos."
    ]
