"""The line's records: every grading kept by lot in a database (SQLite or PostgreSQL via
SQLAlchemy), its schema kept by the Alembic migrations shipped here."""

from .closing import LotClosed, LotEvent, close_lot, closing_of, events_of, reopen_lot
from .corrections import (
    NOTE_LIMIT,
    Correction,
    NoSuchRecord,
    correct,
    history,
    labelled,
    to_check,
)
from .graded import Upload, batch_of, identity_of, record_graded
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

__all__ = [
    "LotClosed",
    "LotEvent",
    "close_lot",
    "closing_of",
    "events_of",
    "reopen_lot",
    "NOTE_LIMIT",
    "Correction",
    "NoSuchRecord",
    "correct",
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
