"""The line's records: every grading kept by lot in a database (SQLite or PostgreSQL via
SQLAlchemy), its schema kept by the Alembic migrations shipped here."""

from .corrections import (
    NOTE_LIMIT,
    Correction,
    NoSuchRecord,
    correct,
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

__all__ = [
    "NOTE_LIMIT",
    "Correction",
    "NoSuchRecord",
    "correct",
    "history",
    "labelled",
    "to_check",
    "Batch",
    "FruitRecord",
    "LotSummary",
    "ModelIdentity",
    "PhotoRecord",
    "RecordsError",
    "Store",
    "check_name",
    "open_store",
]
