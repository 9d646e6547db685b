"""A lot closed, and reopened: events appended to the records (``lot_events``: never an
update; the latest one stands). A closed lot takes no more gradings
(:meth:`mangograde.records.Store.record_many`) and no corrections of its gradings
(:func:`mangograde.records.correct`): both raise :class:`LotClosed`, naming who closed it
and when, before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..basics.errors import SettingsError
from .corrections import NoSuchRecord
from .store import RecordsError, Store, _reason, as_utc, check_name, shown_name

CLOSED, REOPENED = "closed", "reopened"


@dataclass
class LotEvent:
    kind: str  # closed | reopened
    operator: str
    time: datetime  # UTC
    why: str | None


class LotClosed(RecordsError):
    """Lot ``lot`` stands closed (by ``by`` at ``when``, UTC): it takes no more gradings
    and no corrections until it is reopened."""

    def __init__(self, lot: str, by: str, when: datetime, message: str | None = None) -> None:
        self.lot, self.by, self.when = lot, by, as_utc(when)
        shown = shown_name(lot)
        super().__init__(message or (
            f"Lot {shown!r} was closed by {shown_name(by)} at {utc_text(self.when)}: it "
            "takes no more gradings and no corrections. Grade into another lot, or reopen "
            f"it first (mangograde lots reopen '{shown}' --by NAME --why TEXT)."))  # fmt: skip


def utc_text(when: datetime) -> str:
    """``2026-12-08 14:05 UTC``."""
    return f"{as_utc(when):%Y-%m-%d %H:%M} UTC"


def _event(row: Any) -> LotEvent:
    return LotEvent(row.kind, row.operator, as_utc(row.time), row.why)


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


def standing_closes(connection: Any, lots: list[str], lock: bool = False) -> dict[str, LotEvent]:
    """Of the lots named ``lots``, those that stand closed: name -> the closing event.
    ``lock``: their rows are held until the transaction ends (PostgreSQL)."""
    from sqlalchemy import func, select

    from .schema import Lot
    from .schema import LotEvent as Row

    if not lots:
        return {}
    query = select(Lot.id, Lot.name).where(Lot.name.in_(lots))
    ids = dict(connection.execute(query.with_for_update() if lock else query).all())
    if not ids:
        return {}
    last = (
        select(func.max(Row.id)).where(Row.lot_id.in_(list(ids))).group_by(Row.lot_id)
    ).scalar_subquery()
    rows = connection.execute(
        select(Row.lot_id, Row.kind, Row.operator, Row.time, Row.why).where(Row.id.in_(last))
    ).all()
    return {ids[r.lot_id]: _event(r) for r in rows if r.kind == CLOSED}


def refuse_closed(connection: Any, lots: list[str]) -> None:
    """Raise :class:`LotClosed` for the first of ``lots`` that stands closed (in the
    writer's transaction, the lots' rows held until it ends)."""
    closed = standing_closes(connection, list(dict.fromkeys(lots)), lock=True)
    for lot in lots:
        if lot in closed:
            raise LotClosed(lot, closed[lot].operator, closed[lot].time)


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
    from .corrections import check_note

    if why is None or not why.strip():
        raise SettingsError(
            "An empty --why: say why the lot is reopened (it is kept with the event), "
            "e.g. --why 'two crates came back from the buyer'."
        )
    return _append(store, lot, REOPENED, by, check_note(why.strip()))
