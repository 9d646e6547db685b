"""Grade names: the default grades, the orders known without --grades, the spellings a
label may take (``等級A``), checks of a list of names, and a guess at best-first."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from ..basics.errors import DatasetError

DEFAULT_GRADES = ("A", "B", "C")
# Grade orders recognised without --grades (best first).
KNOWN_GRADE_ORDERS = (
    ("A", "B", "C"),
    ("Extra_Class", "Class_I", "Class_II"),
)
# "等級A" is how the competition's CSV spells grade A.
LABEL_PREFIXES = ("等級", "grade_", "grade ", "grade")

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


def check_grade_names(grades: tuple[str, ...]) -> None:
    """Refuse a --grades that is not two or more distinct names."""
    repeated = [g for g, n in Counter(grades).items() if n > 1]
    if repeated or len(grades) < 2 or any(not g for g in grades):
        raise DatasetError(
            f"--grades {','.join(grades)} is not a list of two or more distinct names, "
            "best first (e.g. --grades A,B,C)."
        )


def normalise_label(text: str) -> str:
    """``'等級A'`` -> ``'a'``; compare the result with lower-cased grade names."""
    label = text.strip()
    lowered = label.lower()
    for prefix in LABEL_PREFIXES:
        if lowered.startswith(prefix) and len(label) > len(prefix):
            label = label[len(prefix) :].strip()
            break
    return label.lower()


def known_order(names: set[str]) -> tuple[str, ...] | None:
    """``names`` best-first when they are one of the known grade orders (any case)."""
    for order in KNOWN_GRADE_ORDERS:
        by_lower = {n.lower(): n for n in names}
        if set(by_lower) == {g.lower() for g in order}:
            return tuple(by_lower[g.lower()] for g in order)
    return None


_BETTER = ("extra", "premium", "best", "good", "high", "first", "top", "fresh", "healthy")
_WORSE = ("bad", "poor", "reject", "worst", "low", "rotten", "defect", "damaged", "diseased")


def best_first(names: Sequence[str]) -> list[str]:
    """A guess at best-first for a suggestion: names that say good before plain ones,
    names that say bad last (``good_quality`` before ``bad_quality``)."""

    def rank(name: str) -> int:
        words = name.lower()
        return -1 if any(w in words for w in _BETTER) else int(any(w in words for w in _WORSE))

    return sorted(names, key=rank)
