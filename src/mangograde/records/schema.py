"""The tables of the line's records (SQLAlchemy 2.0): lots, gradings, the fruits graded
from several photos, corrections, and lots closed and reopened. Corrections and lot events
are appended, never an update of what they change. Times are UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Lot(Base):
    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class FruitGrading(Base):
    """A fruit graded from all of its photos of one request (or one predict batch)."""

    __tablename__ = "fruit_gradings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    fruit: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(Text)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    check: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)


class Grading(Base):
    """One photo graded: what was uploaded, by which model, and what it answered."""

    __tablename__ = "gradings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    fruit: Mapped[str | None] = mapped_column(Text)
    fruit_grading_id: Mapped[int | None] = mapped_column(
        ForeignKey("fruit_gradings.id"), index=True
    )
    photo: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    run: Mapped[str] = mapped_column(Text)
    model_sha256: Mapped[str] = mapped_column(String(64))
    grade: Mapped[str] = mapped_column(Text)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    check: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    familiarity: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class Correction(Base):
    """An operator's grade for a grading, appended; the latest one stands."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grading_id: Mapped[int] = mapped_column(ForeignKey("gradings.id"), index=True)
    operator: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class LotEvent(Base):
    """A lot closed or reopened by an operator, appended; the latest one stands."""

    __tablename__ = "lot_events"
    __table_args__ = (CheckConstraint("kind IN ('closed', 'reopened')", name="ck_lot_events_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    kind: Mapped[str] = mapped_column(Text)  # closed | reopened
    operator: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    why: Mapped[str | None] = mapped_column(Text)
