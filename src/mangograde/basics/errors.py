"""Errors that speak to the user: what was wrong, where, and what to do about it."""

from __future__ import annotations

import re
from collections.abc import Sequence

#: How many names a message lists before it says "and N more".
MAX_LISTED = 10


class MangogradeError(Exception):
    """A problem with the user's input or settings, worded for the user.

    The CLI prints the message and exits non-zero; it never shows a traceback
    for these unless ``--debug`` is given.
    """


class DatasetError(MangogradeError):
    """The photos, labels or groups could not be read as a dataset."""


class SettingsError(MangogradeError):
    """A setting (size, fraction, number of folds...) outside what makes sense."""


class OutputError(MangogradeError):
    """An output cannot or may not be written there."""


class BadImagesError(MangogradeError):
    """One or more photos could not be decoded."""

    def __init__(self, message: str, bad: Sequence[object]) -> None:
        super().__init__(message)
        self.bad = list(bad)


def listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c and 4 more``: a short, readable list of names."""
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 photo`` / ``3 photos``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def first_line(exc: BaseException) -> str:
    """An error's message in a line (its class name when it says nothing)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def without_password(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` in it hidden."""
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]+@", r"\1***@", text)
