"""One lot, one number: the lot summary that ``lots show``, the lot report,
``GET /v1/lots/{lot}``, the page's lot line and the to-check list all read.

Photos count by their standing grade (the latest correction, else the model's), fruits
by the grade they were given from their photos; both best grade first, in the order of
the runs' grades. A photo whose standing answer is :data:`REJECT` (the operator said it is
not a mango) is counted apart, as a reject, never as a grade nor in a grade's share; so is
a fruit all of whose photos are rejects (a fruit with some of its photos rejected keeps the
grade its photos gave it). Checks left are the photos marked check by hand that nobody has
corrected or confirmed yet: exactly the to-check list
(:func:`mangograde.records.to_check`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .lot_state import CLOSED
from .names import REJECT, as_utc


@dataclass
class LotSummary:
    name: str
    created: datetime
    note: str | None
    gradings: int  # every photo recorded in the lot, rejects too
    last: datetime | None
    mix: dict[str, int] = field(default_factory=dict)  # grade -> photos (standing grade)
    rejects: int = 0  # photos whose standing answer is REJECT: not in mix
    checks: dict[str, int] = field(default_factory=dict)  # reason -> photos left to check
    corrections: int = 0
    models: dict[str, int] = field(default_factory=dict)  # "run (sha256[:12])" -> photos
    fruits: list[dict[str, Any]] = field(default_factory=list)
    grades: tuple[str, ...] = ()  # the runs' grades, best first
    fruit_mix: dict[str, int] = field(default_factory=dict)  # grade -> fruits, best first
    unfamiliar: int = 0  # photos graded unfamiliar (corrected or not)
    closed_by: str | None = None  # who closed the lot (None: open, or reopened since)
    closed_at: datetime | None = None  # when (UTC)
    fruit_rejects: int = 0  # fruits all of whose photos are rejects: not in fruit_mix

    @property
    def checks_left(self) -> int:
        """Photos left to check by hand: the length of the lot's to-check list."""
        return sum(self.checks.values())

    @property
    def n_fruits(self) -> int:
        """Every fruit recorded, the rejected ones too."""
        return sum(self.fruit_mix.values()) + self.fruit_rejects

    @property
    def graded(self) -> int:
        """Photos that stand graded: every photo but the rejects (what grade shares divide)."""
        return self.gradings - self.rejects

    @property
    def fruits_graded(self) -> int:
        """Fruits that stand graded: every fruit but the rejected ones."""
        return sum(self.fruit_mix.values())


def best_first(counts: dict[str, int], grades: tuple[str, ...]) -> dict[str, int]:
    """``counts`` in grade order, best first; names that are no grade of the runs after."""
    known = [g for g in grades if g in counts]
    return {g: counts[g] for g in [*known, *sorted(set(counts) - set(known))]}


def _grades(session: Any, lot_id: int) -> tuple[str, ...]:
    """The grades of the runs that graded the lot, best first (a grading's probabilities
    keep its run's grade order)."""
    from sqlalchemy import func, select

    from .schema import Grading

    firsts = (
        select(func.min(Grading.id)).where(Grading.lot_id == lot_id).group_by(Grading.run)
    ).scalar_subquery()
    found: dict[str, None] = {}
    query = select(Grading.probabilities).where(Grading.id.in_(firsts)).order_by(Grading.id)
    for probabilities in session.scalars(query):
        found.update(dict.fromkeys(probabilities or {}))
    return tuple(found)


def lot_summary(engine: Any, name: str, detail: bool = False) -> LotSummary | None:
    """Lot ``name``'s photos and fruits by grade, rejects, checks left by reason,
    corrections, unfamiliar photos, models and the close that stands, from the database of
    ``engine`` (None: no such lot); with ``detail``, a row a fruit."""
    from sqlalchemy import case, func, select
    from sqlalchemy.orm import Session

    from .schema import Correction, FruitGrading, Grading, Lot, LotEvent

    with Session(engine) as session:
        lot = session.scalar(select(Lot).where(Lot.name == name))
        if lot is None:
            return None
        latest = (
            select(Correction.grading_id, func.max(Correction.id).label("last"))
            .group_by(Correction.grading_id)
            .subquery()
        )
        final = func.coalesce(Correction.grade, Grading.grade)
        corrected = latest.c.last.is_not(None)
        rows = session.execute(
            select(final, Grading.check, Grading.reason, corrected, Grading.run,
                   Grading.model_sha256, func.count(), func.max(Grading.time))
            .select_from(Grading)
            .outerjoin(latest, latest.c.grading_id == Grading.id)
            .outerjoin(Correction, Correction.id == latest.c.last)
            .where(Grading.lot_id == lot.id)
            .group_by(final, Grading.check, Grading.reason, corrected, Grading.run,
                      Grading.model_sha256)
        ).all()  # fmt: skip
        summary = LotSummary(lot.name, lot.created, lot.note, 0, None)
        summary.grades = _grades(session, lot.id)
        mix: dict[str, int] = {}
        for grade, check, reason, was_corrected, run, sha, count, last in rows:
            summary.gradings += count
            if grade == REJECT:
                summary.rejects += count
            else:
                mix[grade] = mix.get(grade, 0) + count
            if check and not was_corrected:
                key = reason or "unsure"
                summary.checks[key] = summary.checks.get(key, 0) + count
            if reason == "unfamiliar":
                summary.unfamiliar += count
            model = f"{run} ({sha[:12]})"
            summary.models[model] = summary.models.get(model, 0) + count
            if last is not None and (summary.last is None or last > summary.last):
                summary.last = last
        summary.mix = best_first(mix, summary.grades)
        summary.checks = dict(sorted(summary.checks.items()))
        summary.corrections = int(session.scalar(
            select(func.count()).select_from(Correction).join(Grading)
            .where(Grading.lot_id == lot.id)) or 0)  # fmt: skip
        # a fruit a row: its grade, its photos and how many of them stand rejected
        by_fruit = session.execute(
            select(FruitGrading.id, FruitGrading.grade, func.count(Grading.id),
                   func.sum(case((final == REJECT, 1), else_=0)))
            .outerjoin(Grading, Grading.fruit_grading_id == FruitGrading.id)
            .outerjoin(latest, latest.c.grading_id == Grading.id)
            .outerjoin(Correction, Correction.id == latest.c.last)
            .where(FruitGrading.lot_id == lot.id)
            .group_by(FruitGrading.id, FruitGrading.grade)
        ).all()  # fmt: skip
        fruit_mix: dict[str, int] = {}
        rejected: set[int] = set()
        for fruit_id, grade, photos, rejects in by_fruit:
            if (photos and int(rejects or 0) == photos) or grade == REJECT:
                rejected.add(fruit_id)
            else:
                fruit_mix[grade] = fruit_mix.get(grade, 0) + 1
        summary.fruit_rejects = len(rejected)
        summary.fruit_mix = best_first(fruit_mix, summary.grades)
        event = session.execute(
            select(LotEvent.kind, LotEvent.operator, LotEvent.time)
            .where(LotEvent.lot_id == lot.id)
            .order_by(LotEvent.id.desc())
            .limit(1)
        ).first()
        if event is not None and event.kind == CLOSED:
            summary.closed_by = event.operator
            summary.closed_at = as_utc(event.time)
        if detail:
            fruits = session.execute(
                select(FruitGrading.id, FruitGrading.fruit, FruitGrading.grade, FruitGrading.check,
                       FruitGrading.reason, FruitGrading.time,
                       func.count(Grading.id))
                .outerjoin(Grading, Grading.fruit_grading_id == FruitGrading.id)
                .where(FruitGrading.lot_id == lot.id)
                .group_by(FruitGrading.id)
                .order_by(FruitGrading.id)
            ).all()  # fmt: skip
            summary.fruits = [
                {"fruit": f, "grade": REJECT if i in rejected else g, "check": bool(c),
                 "reason": r or "", "time": t, "photos": int(n)}
                for i, f, g, c, r, t, n in fruits
            ]  # fmt: skip
        return summary
