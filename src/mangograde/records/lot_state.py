"""Whether a lot stands closed, read in a writer's transaction: the rule that
:meth:`mangograde.records.Store.record_many` and :func:`mangograde.records.correct`
apply before anything is written (:mod:`.closing` appends the events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .names import RecordsError, as_utc, shown_name

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
