"""A lot closed, and reopened: events appended to the records (``lot_events``: never an
update; the latest one stands). A closed lot takes no more gradings
(:meth:`mangograde.records.Store.record_many`) and no corrections of its gradings
(:func:`mangograde.records.correct`): both raise :class:`LotClosed`, naming who closed it
and when, before anything is written."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..basics.errors import SettingsError
from .lot_state import (  # noqa: F401
    CLOSED,
    REOPENED,
    LotClosed,
    LotEvent,
    _event,
    refuse_closed,
    standing_closes,
    utc_text,
)
from .names import (  # noqa: F401 - the errors are read from here too
    NoSuchRecord,
    RecordsError,
    _reason,
    as_utc,
    check_name,
    check_note,
    shown_name,
)
from .store import Store


def _lot_id(connection: Any, store: Store, lot: str, lock: bool = False) -> int:
    """The lot's id (NoSuchRecord: no such lot); ``lock``: held until the transaction ends
    (PostgreSQL: SELECT ... FOR UPDATE, so a close and a grading of the lot take turns;
    SQLite has one writer at a time)."""
    from sqlalchemy import select

    from .schema import Lot

    query = select(Lot.id).where(Lot.name == lot)
    found = connection.scalar(query.with_for_update() if lock else query)
    if found is None:
        known = list(connection.scalars(select(Lot.name).order_by(Lot.created, Lot.id).limit(5)))
        raise NoSuchRecord(
            f"No lot named {shown_name(lot)!r} in {store.where} (lots: "
            f"{', '.join(map(shown_name, known)) or 'none yet'}): give a lot that was graded "
            "into (mangograde lots list)."
        )
    return int(found)


def events_of(store: Store, lot: str) -> list[LotEvent]:
    """Lot ``lot``'s closings and reopenings, oldest first (NoSuchRecord: no such lot)."""
    from sqlalchemy import select

    from .schema import LotEvent as Row

    with store.engine.connect() as connection:
        lot_id = _lot_id(connection, store, lot)
        rows = connection.execute(
            select(Row.kind, Row.operator, Row.time, Row.why)
            .where(Row.lot_id == lot_id)
            .order_by(Row.id)
        ).all()
    return [_event(r) for r in rows]


def closing_of(store: Store, lot: str) -> LotEvent | None:
    """The close that stands for lot ``lot``; None while it is open (never closed, or
    reopened since)."""
    with store.engine.connect() as connection:
        return _standing(connection, _lot_id(connection, store, lot))


def _standing(connection: Any, lot_id: int) -> LotEvent | None:
    from sqlalchemy import select

    from .schema import LotEvent as Row

    row = connection.execute(
        select(Row.kind, Row.operator, Row.time, Row.why)
        .where(Row.lot_id == lot_id)
        .order_by(Row.id.desc())
        .limit(1)
    ).first()
    return None if row is None or row.kind != CLOSED else _event(row)


def _append(store: Store, lot: str, kind: str, by: str, why: str | None) -> LotEvent:
    from sqlalchemy import insert
    from sqlalchemy.exc import SQLAlchemyError

    from .schema import LotEvent as Row

    name, who = check_name(lot, "lot"), check_name(by, "operator")
    assert name is not None and who is not None
    lot = name
    when = datetime.now(timezone.utc)
    try:
        with store.engine.begin() as connection:
            lot_id = _lot_id(connection, store, lot, lock=True)
            standing = _standing(connection, lot_id)
            if kind == CLOSED and standing is not None:
                raise LotClosed(lot, standing.operator, standing.time, (
                    f"Lot {shown_name(lot)!r} is already closed, by "
                    f"{shown_name(standing.operator)} at {utc_text(standing.time)}: nothing "
                    "was recorded. Reopen it first if it must be closed again."))  # fmt: skip
            if kind == REOPENED and standing is None:
                raise SettingsError(
                    f"Lot {shown_name(lot)!r} is open: there is nothing to reopen, and "
                    "nothing was recorded (mangograde lots close closes it)."
                )
            connection.execute(
                insert(Row).values(lot_id=lot_id, kind=kind, operator=who, time=when, why=why)
            )
    except SQLAlchemyError as exc:
        raise RecordsError(f"The lot could not be {kind} in {store.where}: "
                           f"{_reason(exc)}") from None  # fmt: skip
    return LotEvent(kind, who, when, why)


def close_lot(store: Store, lot: str, by: str) -> LotEvent:
    """Close lot ``lot`` in ``by``'s name: from now on it refuses gradings and corrections
    (:class:`LotClosed`). An unknown lot (NoSuchRecord) or one already closed (LotClosed)
    is refused and nothing is written."""
    return _append(store, lot, CLOSED, by, None)


def reopen_lot(store: Store, lot: str, by: str, why: str) -> LotEvent:
    """Reopen closed lot ``lot`` in ``by``'s name, saying ``why`` (required, kept with the
    event). An unknown lot, an open one or an empty ``why`` is refused; nothing is written."""

    if why is None or not why.strip():
        raise SettingsError(
            "An empty --why: say why the lot is reopened (it is kept with the event), "
            "e.g. --why 'two crates came back from the buyer'."
        )
    return _append(store, lot, REOPENED, by, check_note(why.strip()))
