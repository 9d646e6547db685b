"""CSV cells a spreadsheet shows as text: OWASP's rule against CSV (formula) injection.

A text cell that starts with ``= + - @``, a tab or a carriage return is a formula to a
spreadsheet (a fruit named ``=HYPERLINK(...)`` would run when the CSV is opened), so it is
written with a single quote before it, which a spreadsheet shows as text. Reading one of
our CSVs back removes that quote, so every name comes back exactly. Numbers written as
numbers (``-0.5``) are left alone: only text cells are quoted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FIRST = frozenset("".join(FORMULA_STARTS) + "'")  # how a cell that may need a quote starts


def _looks_like_formula(text: str) -> bool:
    # quotes already in front count too, so that a name starting with ' comes back whole
    return text.lstrip("'").startswith(FORMULA_STARTS)


def text_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text a spreadsheet would take for a formula gets a leading
    ``'``; numbers and every other value are returned as they are."""
    if isinstance(value, str) and value[:1] in _FIRST and _looks_like_formula(value):
        return "'" + value
    return value


def text_row(values: Iterable[Any]) -> list[Any]:
    """A row of cells, each through :func:`text_cell` (inlined: a lot's CSV has many)."""
    return [
        "'" + v if isinstance(v, str) and v[:1] in _FIRST and _looks_like_formula(v) else v
        for v in values
    ]


def read_cell(text: str) -> str:
    """A cell read from a CSV, the quote :func:`text_cell` added taken off again."""
    return text[1:] if text[:1] == "'" and _looks_like_formula(text) else text
