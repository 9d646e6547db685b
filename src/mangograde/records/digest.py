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

import contextlib
import functools
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..basics.errors import SettingsError
from .store import REVISIONS, TABLES, Store, as_utc, open_existing

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


# One encoder for every row (json.dumps makes one a call): sorted keys, no spaces.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=True, default=_plain)  # fmt: skip


# For rows whose keys are already in order at every level (see :func:`_in_order`):
# sorting each row's keys again was most of the time a digest took.
_IN_ORDER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True,
                             check_circular=False, default=_plain)  # fmt: skip


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


# The lot's rows are read as the driver gives them (no ORM, no SQLAlchemy type a value: a
# closed lot of 10,000 gradings verifies in well under a second) and made the values the
# schema's types give, by the types the database itself declares for each column.
_TABLES = ("lots", "gradings", "corrections", "fruit_gradings", "lot_events")
_SQL = {
    "lots": "SELECT {} FROM lots WHERE name = :key",
    "gradings": "SELECT {} FROM gradings WHERE lot_id = :key ORDER BY id",
    "corrections": "SELECT {} FROM corrections JOIN gradings ON gradings.id = "
    "corrections.grading_id WHERE gradings.lot_id = :key ORDER BY corrections.id",
    "fruit_gradings": "SELECT {} FROM fruit_gradings WHERE lot_id = :key ORDER BY id",
    "lot_events": "SELECT {} FROM lot_events WHERE lot_id = :key ORDER BY id",
}
Query = Callable[[str, dict[str, Any]], list[Any]]
Make = Callable[[Any], Any]


def _kind(declared: str) -> Make | None:
    """What makes a column's stored value the schema's (None: the value as stored)."""
    declared = declared.lower()
    if "timestamp" in declared or "datetime" in declared:
        return _time
    if declared.startswith("bool"):
        return bool
    if declared.startswith("json"):
        return _json
    return None


@functools.lru_cache(maxsize=4096)
def _time_from_text(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _time(value: Any) -> Any:
    return _time_from_text(value) if isinstance(value, str) else value  # SQLite keeps text


_DECODER = json.JSONDecoder()


def _json(value: Any) -> Any:
    """A JSON cell's value, its keys in their stored order (a grading's probabilities keep
    its run's grades best first: the certificate's columns follow them)."""
    if not isinstance(value, str):
        return value
    try:  # the C scanner alone: decode()'s wrappers were a third of reading a lot
        found, end = _DECODER.scan_once(value, 0)
    except StopIteration:
        found, end = None, -1
    return found if end == len(value) else _DECODER.decode(value)  # which says what is wrong


def _ordered(value: Any) -> Any:
    """A JSON value with every object's keys in order."""
    if isinstance(value, dict):
        return {k: _ordered(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return value


def _columns(query: Query, dialect: str) -> dict[str, list[tuple[str, Make | None]]]:
    """Table -> its columns, each with what makes its values (None: as stored)."""
    if dialect == "sqlite":
        declared = [(table, row[1], row[2]) for table in _TABLES
                    for row in query(f"PRAGMA table_info({table})", {})]  # fmt: skip
    else:
        declared = query("SELECT table_name, column_name, data_type FROM "
                         "information_schema.columns WHERE table_schema = current_schema() "
                         "ORDER BY ordinal_position", {})  # fmt: skip
    columns: dict[str, list[tuple[str, Make | None]]] = {}
    for table, column, type_name in declared:
        columns.setdefault(str(table), []).append((str(column), _kind(str(type_name))))
    return columns


def _read(query: Query, table: str, key: Any,
          columns: dict[str, list[tuple[str, Make | None]]]) -> list[dict[str, Any]]:  # fmt: skip
    """The table's rows of the lot, every column but ``lot_id`` (which only says the lot),
    the columns in order (as the canonical text has them; a JSON cell's own keys are put
    in order when the row is encoded)."""
    kept = sorted(((c, make) for c, make in columns[table] if c != "lot_id" or table == "lots"),
                  key=lambda column: column[0])  # fmt: skip
    names = [c for c, _ in kept]
    made = [(at, make) for at, (_, make) in enumerate(kept) if make is not None]
    found = query(_SQL[table].format(", ".join(f'"{table}"."{c}"' for c in names)), {"key": key})
    rows = []
    for raw in found:
        values = list(raw)
        for at, make in made:
            if values[at] is not None:
                values[at] = make(values[at])
        rows.append(dict(zip(names, values, strict=True)))
    return rows


def _lot_from(query: Query, dialect: str, name: str) -> LotRecords | None:
    kinds = _columns(query, dialect)
    found_lot = _read(query, "lots", name, kinds)
    if not found_lot:
        return None
    lot = found_lot[0]
    lot_id = lot.pop("id")
    found = LotRecords(
        lot,
        _read(query, "gradings", lot_id, kinds),
        _read(query, "corrections", lot_id, kinds),
        _read(query, "fruit_gradings", lot_id, kinds),
        _read(query, "lot_events", lot_id, kinds) if "lot_events" in kinds else None,
    )
    found.rows = row_digests(found)
    return found


def lot_records(store: Store, name: str) -> LotRecords:
    """Lot ``name``'s records and their digests (``SettingsError``: no such lot)."""
    from sqlalchemy import text

    with store._connect() as connection:

        def query(sql: str, params: dict[str, Any]) -> list[Any]:
            return connection.execute(text(sql), params).fetchall()

        found = _lot_from(query, connection.dialect.name, name)
    if found is None:
        raise store._no_lot(name)
    return found


def _sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (None: any other URL)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or any(c in url for c in "?%#"):
        return None
    path = Path(url[len(prefix) :])
    return path if path.is_file() else None


def _read_sqlite_file(path: Path, name: str) -> LotRecords | None:
    """The lot read straight from an SQLite file of this mangograde's newest schema, through
    the standard library and read-only; None where anything is not as expected (the store
    then says what)."""
    from urllib.parse import quote

    try:
        with contextlib.closing(sqlite3.connect(
                f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)) as connection:  # fmt: skip

            def query(sql: str, params: dict[str, Any]) -> list[Any]:
                return connection.execute(sql, params).fetchall()

            tables = {row[0] for row in query(
                "SELECT name FROM sqlite_master WHERE type = 'table'", {})}  # fmt: skip
            if not tables <= set(TABLES) | {"alembic_version"} or "lots" not in tables:
                return None
            versions = query("SELECT version_num FROM alembic_version", {})
            if versions != [(REVISIONS[-1],)]:
                return None
            return _lot_from(query, "sqlite", name)
    except sqlite3.Error:
        return None


def read_lot(url: str, name: str) -> LotRecords:
    """Lot ``name``'s records in the database at ``url``, never written to: a plain SQLite
    file of the newest schema is read by the standard library alone (no SQLAlchemy to
    import: a certificate is checked in well under a second); anything else, or anything
    unexpected, through the store, which says what is wrong."""
    path = _sqlite_file(url)
    found = _read_sqlite_file(path, name) if path is not None else None
    return found if found is not None else lot_records(open_existing(url), name)


def _sha(row: Any) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def _in_order(row: dict[str, Any]) -> dict[str, Any]:
    """A row as :func:`_read` gives it (its columns in order) with its JSON cells' keys
    in order too: ready to encode as it is."""
    return {k: _ordered(v) if isinstance(v, (dict, list)) else v for k, v in row.items()}


def row_digests(records: LotRecords) -> dict[str, str]:
    """Key -> SHA-256 of each row of the lot (see the module's docstring)."""
    by_grading: dict[int, list[dict[str, Any]]] = {}
    for correction in records.corrections:
        by_grading.setdefault(correction["grading_id"], []).append(correction)
    encode = _IN_ORDER.encode
    fruits = {f["id"]: encode(_in_order(f)) for f in records.fruits}
    no_corrections = encode([])
    used: set[int] = set()
    rows: dict[str, str] = {}
    for grading in records.gradings:
        fruit_id = grading.get("fruit_grading_id")
        if fruit_id is not None:
            used.add(fruit_id)
        corrections = by_grading.get(grading["id"])
        made = encode([_in_order(c) for c in corrections]) if corrections else no_corrections
        # The text of {"corrections": ..., "fruit": ..., "grading": ...} as canonical()
        # writes it (keys sorted, no spaces), each fruit encoded once for all its photos.
        whole = (
            f'{{"corrections":{made}'
            f',"fruit":{fruits.get(fruit_id, "null") if fruit_id is not None else "null"}'
            f',"grading":{encode(_in_order(grading))}}}'
        )
        rows[f"grading {grading['id']}"] = hashlib.sha256(whole.encode("utf-8")).hexdigest()
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
