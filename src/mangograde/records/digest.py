"""A lot's records as one SHA-256 digest, and a digest a row, so that a certificate says
which lot it was made of and a later check says which rows differ.

Each row is serialised canonically: JSON with sorted keys and no spaces, UTF-8, times as
UTC ISO 8601 (``2026-12-07T09:00:00.123456+00:00``), floats as stored (the shortest text
that reads back the same number). The rows:

- ``grading ID``: every field of the grading but its lot, with its corrections (oldest
  first, every field) and the fruit it was graded in (every field);
- ``lot``: the lot's name, creation time and note;
- ``lot events``: the lot's closings and reopenings (where the records have them);
- ``fruits without photos``: fruit gradings no grading names (only when there are some).

The lot's digest is the SHA-256 of ``mangograde lot digest 1`` and then a line ``KEY
ROW-DIGEST`` a row, gradings by id first, so it can be recomputed from a certificate's
row digests alone."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..basics.errors import SettingsError
from .store import Store, as_utc

HEADER = "mangograde lot digest 1"
LOT, EVENTS, LOOSE_FRUITS = "lot", "lot events", "fruits without photos"
_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_digest(text: str, option: str = "--digest") -> str:
    """A lot digest as typed: 64 hexadecimal digits (either case, spaces around ignored)."""
    value = text.strip().lower()
    if not _HEX.match(value):
        what = f"{len(value)} characters" if len(value) != 64 else "characters that are not hex"
        raise SettingsError(
            f"{option} {text[:80]!r} is not a lot digest ({what}): give the 64 hexadecimal "
            "digits (0-9, a-f) of the SHA-256 that the lot's certificate states "
            "(mangograde lots report LOT --out lot.html or lot.csv)."
        )
    return value


@functools.lru_cache(maxsize=4096)
def _time_text(value: datetime) -> str:
    # Times that compare equal are the same instant (naive ones never equal aware ones),
    # so they have the same text: a batch's gradings share theirs.
    return as_utc(value).isoformat()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _time_text(value)
    raise TypeError(f"a {type(value).__name__} in a lot's records")


def _rows(result: Any, leave: tuple[str, ...] = ("lot_id",)) -> list[dict[str, Any]]:
    keys = list(result.keys())
    left = [k for k in leave if k in keys]
    rows = [dict(zip(keys, row, strict=True)) for row in result]
    for row in rows:  # what is left keeps its order
        for key in left:
            del row[key]
    return rows


# One encoder for every row (json.dumps makes one a call): sorted keys, no spaces.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=True, default=_plain)  # fmt: skip


def canonical(row: Any) -> bytes:
    """``row`` as the bytes its digest is taken of (times as UTC ISO 8601)."""
    return _ENCODER.encode(row).encode("utf-8")


@dataclass
class LotRecords:
    """Every record of one lot, as the database gives them back (times in UTC; naive
    from SQLite)."""

    lot: dict[str, Any]
    gradings: list[dict[str, Any]]
    corrections: list[dict[str, Any]]  # oldest first
    fruits: list[dict[str, Any]]
    events: list[dict[str, Any]] | None  # None: the records have no lot events
    rows: dict[str, str] = field(default_factory=dict)  # key -> row digest

    @functools.cached_property
    def digest(self) -> str:
        """The lot's digest (computed once: ``rows`` is set before it is read)."""
        return lot_digest(self.rows)


def lot_digest(rows: dict[str, str]) -> str:
    """The lot's digest from its row digests (in the order :func:`lot_records` gives)."""
    text = "\n".join([HEADER, *(f"{key} {digest}" for key, digest in rows.items())])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lot_records(store: Store, name: str) -> LotRecords:
    """Lot ``name``'s records and their digests (``SettingsError``: no such lot)."""
    from sqlalchemy import select

    from .schema import Base, Correction, FruitGrading, Grading, Lot

    events_table = Base.metadata.tables.get("lot_events")
    with store.engine.connect() as connection:
        found_lot = _rows(connection.execute(select(Lot.__table__).where(Lot.name == name)), ())
        if not found_lot:
            raise store._no_lot(name)
        lot = found_lot[0]
        lot_id = lot.pop("id")
        gradings = _rows(
            connection.execute(
                select(Grading.__table__).where(Grading.lot_id == lot_id).order_by(Grading.id)
            )
        )
        corrections = _rows(
            connection.execute(
                select(Correction.__table__)
                .join(Grading, Grading.id == Correction.grading_id)
                .where(Grading.lot_id == lot_id)
                .order_by(Correction.id)
            )
        )
        fruits = _rows(
            connection.execute(
                select(FruitGrading.__table__)
                .where(FruitGrading.lot_id == lot_id)
                .order_by(FruitGrading.id)
            )
        )
        events = None
        if events_table is not None:
            events = _rows(connection.execute(
                select(events_table).where(events_table.c.lot_id == lot_id)
                .order_by(events_table.c.id)))  # fmt: skip
    found = LotRecords(lot, gradings, corrections, fruits, events)
    found.rows = row_digests(found)
    return found


def _sha(row: Any) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def row_digests(records: LotRecords) -> dict[str, str]:
    """Key -> SHA-256 of each row of the lot (see the module's docstring)."""
    by_grading: dict[int, list[dict[str, Any]]] = {}
    for correction in records.corrections:
        by_grading.setdefault(correction["grading_id"], []).append(correction)
    fruits = {f["id"]: f for f in records.fruits}
    used: set[int] = set()
    rows: dict[str, str] = {}
    for grading in records.gradings:
        fruit_id = grading.get("fruit_grading_id")
        if fruit_id is not None:
            used.add(fruit_id)
        whole = {"grading": grading, "corrections": by_grading.get(grading["id"], []),
                 "fruit": fruits.get(fruit_id) if fruit_id is not None else None}  # fmt: skip
        rows[f"grading {grading['id']}"] = _sha(whole)
    rows[LOT] = _sha(records.lot)
    if records.events is not None:
        rows[EVENTS] = _sha(records.events)
    loose = [f for f in records.fruits if f["id"] not in used]
    if loose:
        rows[LOOSE_FRUITS] = _sha(loose)
    return rows


@dataclass
class Differences:
    """Rows of a certificate against the lot now, by key (``grading 12``, ``lot``)."""

    added: list[str] = field(default_factory=list)  # in the lot now, not in the certificate
    removed: list[str] = field(default_factory=list)  # in the certificate, gone from the lot
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def differences(certified: dict[str, str], now: dict[str, str]) -> Differences:
    """What differs between a certificate's row digests and the lot's now."""
    found = Differences()
    for key, digest in now.items():
        if key not in certified:
            found.added.append(key)
        elif certified[key] != digest:
            found.changed.append(key)
    found.removed = [k for k in certified if k not in now]
    return found
