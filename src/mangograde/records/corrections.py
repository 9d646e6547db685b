"""What the operator decides: corrections appended to the records (never an update of the
grading they correct; the latest one stands, an undo is a new one), the queue of a lot's
gradings to check by hand, any of a lot's gradings found by name, and the corrected photos
for the next run's labels. Besides the run's grades an operator may answer
:data:`REJECT`: the photo is not a mango."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..basics.errors import SettingsError
from .names import (  # noqa: F401 - NOTE_LIMIT and check_note are read from here too
    NAME_LIMIT,
    NOTE_LIMIT,
    REJECT,
    NoSuchRecord,
    RecordsError,
    _reason,
    as_utc,
    check_name,
    check_note,
    unsafe_character,
)
from .store import Store


@dataclass(frozen=True)
class Correction:
    id: int
    grading_id: int
    grade: str
    previous: str  # the grade that stood before (the model's, or an earlier correction's)
    operator: str
    time: datetime
    note: str | None = None


def correct(
    store: Store,
    grading_id: int,
    grade: str,
    operator: str,
    note: str | None = None,
    when: datetime | None = None,
) -> Correction:
    """Append the operator's ``grade`` for grading ``grading_id``. The grade must be one of
    the grading's run's grades, or :data:`REJECT` (not a mango); the grading must exist
    (:class:`NoSuchRecord`) and its lot must be open (:class:`mangograde.records.LotClosed`)."""
    from sqlalchemy import insert, select
    from sqlalchemy.exc import SQLAlchemyError

    from .lot_state import refuse_closed
    from .schema import Correction as Row
    from .schema import Grading, Lot

    who = check_name(operator, "operator")
    assert who is not None
    note = check_note(note)
    when = when or datetime.now(timezone.utc)
    try:
        with store.engine.begin() as connection:
            found = connection.execute(
                select(Grading.grade, Grading.probabilities, Lot.name)
                .join(Lot, Lot.id == Grading.lot_id)
                .where(Grading.id == grading_id)
            ).first()
            if found is None:
                raise NoSuchRecord(f"No grading {grading_id} in {store.where}.")
            graded, probabilities, lot = found
            refuse_closed(connection, [lot])
            grades = list(probabilities)
            if grade not in grades and grade != REJECT:
                raise SettingsError(
                    f"{str(grade)[:40]!r} is not a grade of the run that graded {grading_id}: "
                    f"give one of {', '.join(grades)}, or {REJECT!r} for a photo that is not "
                    "a mango."
                )
            before = connection.scalar(
                select(Row.grade).where(Row.grading_id == grading_id).order_by(Row.id.desc())
            )
            new_id = connection.scalar(
                insert(Row)
                .values(grading_id=grading_id, operator=who, grade=grade, time=when, note=note)
                .returning(Row.id)
            )
    except SQLAlchemyError as exc:
        raise RecordsError(f"The correction could not be kept in {store.where}: "
                           f"{_reason(exc)}") from None  # fmt: skip
    return Correction(int(new_id), grading_id, grade, before or graded, who, when, note)


def history(store: Store, grading_id: int) -> list[Correction]:
    """Every correction of a grading, oldest first."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .schema import Correction as Row
    from .schema import Grading

    with Session(store.engine) as session:
        graded = session.scalar(select(Grading.grade).where(Grading.id == grading_id))
        if graded is None:
            raise NoSuchRecord(f"No grading {grading_id} in {store.where}.")
        rows = session.scalars(select(Row).where(Row.grading_id == grading_id).order_by(Row.id))
        found, standing = [], graded
        for row in rows:
            found.append(Correction(row.id, grading_id, row.grade, standing, row.operator,
                                    row.time, row.note))  # fmt: skip
            standing = row.grade
    return found


def _latest() -> Any:
    from sqlalchemy import func, select

    from .schema import Correction as Row

    return (
        select(Row.grading_id, func.max(Row.id).label("last")).group_by(Row.grading_id).subquery()
    )


def to_check(store: Store, lot: str, include_corrected: bool = False) -> list[dict[str, Any]]:
    """The lot's gradings marked check by hand, not-a-fruit then unfamiliar first, then
    least sure first
    (the lowest top probability); without ``include_corrected``, only those nobody has
    corrected or confirmed yet."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .schema import Correction as Row
    from .schema import Grading, Lot

    latest = _latest()
    with Session(store.engine) as session:
        lot_id = session.scalar(select(Lot.id).where(Lot.name == lot))
        if lot_id is None:
            raise NoSuchRecord(f"No lot named {lot!r} in {store.where}.")
        query = (
            select(Grading.id, Grading.time, Grading.photo, Grading.sha256, Grading.fruit,
                   Grading.grade, Grading.reason, Grading.familiarity, Grading.probabilities,
                   Row.grade, Row.operator)
            .outerjoin(latest, latest.c.grading_id == Grading.id)
            .outerjoin(Row, Row.id == latest.c.last)
            .where(Grading.lot_id == lot_id, Grading.check.is_(True))
        )  # fmt: skip
        if not include_corrected:
            query = query.where(latest.c.last.is_(None))
        rows = session.execute(query).all()
    found = [
        {"grading_id": i, "time": t, "photo": photo, "sha256": sha, "fruit": fruit or None,
         "grade": grade, "reason": reason or "unsure", "familiarity": familiarity,
         "top_probability": max(p.values()), "probabilities": p,
         "corrected_grade": corrected, "corrected_by": operator}
        for i, t, photo, sha, fruit, grade, reason, familiarity, p, corrected, operator in rows
    ]  # fmt: skip
    first = {"not-a-fruit": 0, "unfamiliar": 1}
    found.sort(key=lambda r: (first.get(r["reason"], 2), r["top_probability"], r["grading_id"]))
    return found


PAGE_LIMIT = 200  # gradings a page of :func:`find_gradings` holds, at most


@dataclass(frozen=True)
class Found:
    """A page of a lot's gradings: ``total`` match, ``items`` newest first."""

    total: int
    items: list[dict[str, Any]]


def check_search(search: str | None) -> str | None:
    """A search string as used: stripped, at most :data:`NAME_LIMIT` characters (a photo
    or fruit name is no longer), no control characters; None or blank: every grading."""
    if search is None or not search.strip():
        return None
    if len(search) > NAME_LIMIT:
        raise SettingsError(
            f"A search of {len(search):,} characters: a photo or fruit name has at most "
            f"{NAME_LIMIT}; search for a part of the name."
        )
    inner = search.strip(" \t\n\r\f\v")  # as a name: whitespace around it is let go
    bad = sorted({f"U+{ord(c):04X}" for c in inner if unsafe_character(c)})
    if bad:
        raise SettingsError(
            f"The search {search[:40]!r} holds control characters ({', '.join(bad[:5])}), "
            "which no photo or fruit name holds: type the name's visible part."
        )
    return search.strip()


def find_gradings(
    store: Store, lot: str, search: str | None = None, limit: int = 50, offset: int = 0
) -> Found:
    """Lot ``lot``'s gradings whose photo or fruit name holds ``search`` (any case; None:
    all of them), newest first, ``limit`` of them (1 to :data:`PAGE_LIMIT`) after the
    first ``offset``; each with the grade that stands now (``standing``: the latest
    correction's, else the model's), whether it was corrected, and by whom. Marked check
    or not: any photo of the lot can be found and corrected."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from .schema import Correction as Row
    from .schema import Grading, Lot

    search = check_search(search)
    if not 1 <= limit <= PAGE_LIMIT:
        raise SettingsError(f"limit={limit}: give 1 to {PAGE_LIMIT} gradings a page.")
    if offset < 0:
        raise SettingsError(f"offset={offset}: give 0 or more (the gradings to skip).")
    latest = _latest()
    with Session(store.engine) as session:
        lot_id = session.scalar(select(Lot.id).where(Lot.name == lot))
        if lot_id is None:
            raise NoSuchRecord(f"No lot named {lot!r} in {store.where}.")
        where = [Grading.lot_id == lot_id]
        if search is not None:
            # icontains: both sides lowered by the database itself, LIKE's % and _ escaped
            where.append(
                Grading.photo.icontains(search, autoescape=True)
                | func.coalesce(Grading.fruit, "").icontains(search, autoescape=True)
            )
        total = session.scalar(select(func.count()).select_from(Grading).where(*where)) or 0
        rows = session.execute(
            select(Grading.id, Grading.time, Grading.photo, Grading.sha256, Grading.fruit,
                   Grading.grade, Grading.check, Grading.reason, Grading.familiarity,
                   Grading.probabilities, Row.grade, Row.operator)
            .outerjoin(latest, latest.c.grading_id == Grading.id)
            .outerjoin(Row, Row.id == latest.c.last)
            .where(*where)
            .order_by(Grading.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()  # fmt: skip
    items = [
        {"grading_id": i, "time": as_utc(t), "photo": photo, "sha256": sha, "fruit": fruit or None,
         "grade": grade, "check": bool(check), "reason": reason or None,
         "familiarity": familiarity, "top_probability": max(p.values()), "probabilities": p,
         "standing": corrected or grade, "corrected": corrected is not None,
         "corrected_by": operator}
        for i, t, photo, sha, fruit, grade, check, reason, familiarity, p, corrected, operator
        in rows
    ]  # fmt: skip
    return Found(int(total), items)


def labelled(
    store: Store,
    lots: Sequence[str] = (),
    since: datetime | None = None,
    confirmed: bool = False,
) -> list[dict[str, Any]]:
    """The photos whose grade an operator changed (with ``confirmed``, also those an
    operator looked at and left as graded), one row a photo (the same bytes graded twice:
    the latest correction stands), oldest first. ``lots``: only these (each must exist);
    ``since``: corrections made at or after it."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .schema import Correction as Row
    from .schema import Grading, Lot

    latest = _latest()
    with Session(store.engine) as session:
        known = set(session.scalars(select(Lot.name)))
        missing = [lot for lot in lots if lot not in known]
        if missing:
            raise NoSuchRecord(
                f"No lot named {', '.join(map(repr, missing))} in {store.where} "
                f"(lots: {', '.join(sorted(known)[:5]) or 'none yet'})."
            )
        query = (
            select(Grading.id, Grading.photo, Grading.sha256, Grading.fruit, Lot.name,
                   Grading.grade, Row.grade, Row.operator, Row.time, Grading.probabilities)
            .join(Lot, Lot.id == Grading.lot_id)
            .join(latest, latest.c.grading_id == Grading.id)
            .join(Row, Row.id == latest.c.last)
            .order_by(Row.id)
        )  # fmt: skip
        if lots:
            query = query.where(Lot.name.in_(list(lots)))
        if since is not None:
            query = query.where(Row.time >= as_utc(since))
        rows = session.execute(query).all()
    by_photo: dict[str, dict[str, Any]] = {}
    for grading_id, photo, sha, fruit, lot, graded, grade, operator, when, p in rows:
        by_photo.pop(sha, None)  # a later correction of the same bytes moves it to the end
        by_photo[sha] = {"grading_id": grading_id, "photo": photo, "sha256": sha,
                         "fruit": fruit or None, "lot": lot, "graded": graded, "grade": grade,
                         "operator": operator, "time": when, "grades": list(p)}  # fmt: skip
    return [r for r in by_photo.values() if confirmed or r["grade"] != r["graded"]]


def standing(store: Store, grading_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The gradings of ``grading_ids`` that the records hold, by id: photo, SHA-256, lot,
    the model's grade, the run's grades and every correction, oldest first (the last one
    stands). Ids the records do not hold are left out."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .schema import Correction as Row
    from .schema import Grading, Lot

    wanted = sorted(set(grading_ids))
    found: dict[int, dict[str, Any]] = {}
    with Session(store.engine) as session:
        for start in range(0, len(wanted), 500):  # within every database's bound parameters
            part = wanted[start : start + 500]
            query = (
                select(Grading.id, Grading.photo, Grading.sha256, Lot.name, Grading.grade,
                       Grading.probabilities)
                .join(Lot, Lot.id == Grading.lot_id)
                .where(Grading.id.in_(part))
            )  # fmt: skip
            for grading_id, photo, sha, lot, graded, p in session.execute(query):
                found[grading_id] = {"grading_id": grading_id, "photo": photo, "sha256": sha,
                                     "lot": lot, "graded": graded, "grades": list(p),
                                     "corrections": []}  # fmt: skip
            rows = session.scalars(select(Row).where(Row.grading_id.in_(part)).order_by(Row.id))
            for row in rows:
                before = found[row.grading_id]["corrections"]
                previous = before[-1].grade if before else found[row.grading_id]["graded"]
                before.append(Correction(row.id, row.grading_id, row.grade, previous,
                                         row.operator, as_utc(row.time), row.note))  # fmt: skip
    return found
