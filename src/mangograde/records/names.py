"""What every part of the records shares: its errors, the rules for names and notes, and
times in UTC. The bottom of ``records/``: it imports nothing of it."""

from __future__ import annotations

from datetime import datetime, timezone

from ..basics.answers import REJECT as REJECT  # the records' name for it too
from ..basics.errors import MangogradeError, SettingsError

NAME_LIMIT = 200  # characters of a lot or fruit name
NOTE_LIMIT = 10_000  # characters of a correction's note
# REJECT, the operator's "not a mango": kept as a correction's grade besides the run's
# grades, never counted as a grade (the lot summary counts it apart, ``data labels``
# writes it apart).


class RecordsError(MangogradeError):
    """The database cannot be used or written."""


def check_name(value: str | None, what: str, required: bool = True) -> str | None:
    """A lot or fruit name as kept: stripped, 1 to 200 characters, no control characters."""
    if value is None or not value.strip():
        if required:
            raise SettingsError(f"An empty {what} name: give the {what} a name, e.g. 2026-12-03-A.")
        return None
    # C1 controls and the separators count as whitespace to str.strip(): refused, not cut
    raw, value = value, value.strip()
    bad = sorted({f"U+{ord(c):04X}" for c in raw.strip(" \t\n\r\f\v") if unsafe_character(c)})
    if len(value) > NAME_LIMIT:
        raise SettingsError(
            f"A {what} name of {len(value)} characters: at most {NAME_LIMIT} are kept; "
            "use a shorter name and put the rest in the lot's note."
        )
    if bad:
        raise SettingsError(
            f"The {what} name {raw[:40]!r} holds control characters ({', '.join(bad[:5])}): "
            "they break, hide or reorder the text where the name is shown. Remove them."
        )
    return value


def unsafe_character(c: str) -> bool:
    """A character no name keeps: C0 and C1 controls, DEL, the bidirectional overrides
    and isolates (U+202A-U+202E, U+2066-U+2069) and the line and paragraph separators."""
    o = ord(c)
    return (o < 32 or 127 <= o <= 159 or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069
            or o in (0x2028, 0x2029))  # fmt: skip


def shown_name(value: str) -> str:
    """``value`` for a screen: any character :func:`unsafe_character` escaped (``\\u202e``),
    for names kept before they were refused."""
    if not any(unsafe_character(c) for c in value):
        return value
    return "".join(c.encode("unicode_escape").decode() if unsafe_character(c) else c
                   for c in value)  # fmt: skip


class NoSuchRecord(SettingsError):
    """A grading or lot that the records do not hold."""


def check_note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    if len(note) > NOTE_LIMIT:
        raise SettingsError(
            f"A note of {len(note):,} characters: a correction keeps at most {NOTE_LIMIT:,}; "
            "shorten it."
        )
    return note


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC, as the records keep times (a naive time is taken as UTC): SQLite
    compares times as text, so an offset left in place would shift the instant."""
    return (
        when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    )


def _reason(exc: Exception) -> str:
    origin = getattr(exc, "orig", None) or exc
    return str(origin).strip().splitlines()[0] if str(origin).strip() else type(origin).__name__
