"""The line's records: every grading kept by lot in a database (SQLite or PostgreSQL via
SQLAlchemy), its schema kept by the Alembic migrations shipped here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .closing import LotClosed, LotEvent, close_lot, closing_of, events_of, reopen_lot
from .corrections import (
    NOTE_LIMIT,
    PAGE_LIMIT,
    REJECT,
    Correction,
    Found,
    NoSuchRecord,
    correct,
    find_gradings,
    history,
    labelled,
    to_check,
)
from .store import (
    Batch,
    FruitRecord,
    LotSummary,
    ModelIdentity,
    PhotoRecord,
    RecordsError,
    Store,
    check_name,
    open_store,
)
from .summary import best_first

if TYPE_CHECKING:
    from .graded import Upload, batch_of, identity_of, record_graded

# Rows made from a Graded need the grading core (numpy, Pillow): imported when first
# asked for, so that reading the records (``mangograde lots``) does not pay for them.
_GRADED = ("Upload", "batch_of", "identity_of", "record_graded")


def __getattr__(name: str) -> Any:
    if name in _GRADED:
        from . import graded

        return getattr(graded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LotClosed",
    "LotEvent",
    "close_lot",
    "closing_of",
    "events_of",
    "reopen_lot",
    "NOTE_LIMIT",
    "PAGE_LIMIT",
    "REJECT",
    "Correction",
    "Found",
    "NoSuchRecord",
    "correct",
    "find_gradings",
    "history",
    "labelled",
    "to_check",
    "Upload",
    "batch_of",
    "identity_of",
    "record_graded",
    "Batch",
    "FruitRecord",
    "LotSummary",
    "ModelIdentity",
    "PhotoRecord",
    "RecordsError",
    "Store",
    "check_name",
    "open_store",
    "best_first",
]
