"""Where the line's gradings are kept: a database by URL (SQLite by default, PostgreSQL
through ``postgresql+psycopg://``), its schema brought up to date by Alembic's migrations
shipped in this package, and every batch of gradings written in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..basics.errors import SettingsError, listing
from .names import (  # noqa: F401
    NAME_LIMIT,
    RecordsError,
    _reason,
    as_utc,
    check_name,
    shown_name,
    unsafe_character,
)
from .summary import LotSummary, lot_summary

MIGRATIONS = Path(__file__).parent / "migrations"
# The migrations shipped, oldest first (a test holds this to Alembic's own history): the
# schema is checked against it with one query, so reading a lot never imports Alembic.
REVISIONS = ("0001", "0002", "0003")
# The tables the newest schema has (a test holds this to the schema): the check for another
# application's tables needs no ORM.
TABLES = ("corrections", "fruit_gradings", "gradings", "lot_events", "lots")


@dataclass
class PhotoRecord:
    """One graded photo, as it is kept."""

    photo: str
    sha256: str
    size: int
    grade: str
    probabilities: dict[str, float]
    check: bool = False
    reason: str | None = None
    familiarity: float | None = None
    latency_ms: float | None = None
    fruit: str | None = None


@dataclass
class FruitRecord:
    fruit: str
    grade: str
    probabilities: dict[str, float]
    check: bool = False
    reason: str | None = None


@dataclass
class ModelIdentity:
    run: str
    sha256: str  # the run's bundles together, or the export's graph


@dataclass
class Batch:
    """Gradings to keep together in one lot (one request, or one predict batch)."""

    lot: str
    model: ModelIdentity
    photos: list[PhotoRecord]
    fruits: list[FruitRecord] = field(default_factory=list)
    when: datetime | None = None

    def check(self) -> None:
        """The lot's and the fruits' names, as kept (refused before anything is written)."""
        name = check_name(self.lot, "lot")
        assert name is not None
        self.lot = name
        for fruit in {p.fruit for p in self.photos} | {f.fruit for f in self.fruits}:
            check_name(fruit, "fruit", required=False)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """A records database. ``url``: an SQLAlchemy URL (``sqlite:///PATH`` or
    ``postgresql+psycopg://USER@HOST:PORT/DB``)."""

    def __init__(self, url: str) -> None:
        try:
            from sqlalchemy import create_engine, event
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        except ImportError as exc:
            raise SettingsError(
                f"Records need {exc.name}: pip install 'mangograde[records]'."
            ) from None

        self.url = url
        try:
            self.engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise SettingsError(
                f"{url!r} is not a database URL mangograde can use ({exc}): give "
                "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE."
            ) from None
        except ImportError as exc:
            raise SettingsError(
                f"{url!r} needs {exc.name}: pip install 'mangograde[records]'."
            ) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def where(self) -> str:
        """The URL without its password."""
        return self.engine.url.render_as_string(hide_password=True)

    # -- the schema -----------------------------------------------------------------------

    def _alembic(self, connection: Any) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def revision(self) -> tuple[str | None, str]:
        """The database's schema revision (None: empty) and this mangograde's newest. A
        database holding tables mangograde did not make is refused (nothing is written)."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._connect() as connection:
                if not self._refuse_foreign(connection):
                    return None, REVISIONS[-1]
                found = connection.execute(text("SELECT version_num FROM alembic_version"))
                versions = [str(v) for v in found.scalars()]
        except SQLAlchemyError as exc:
            raise self._unusable(exc) from None
        return (versions[0] if versions else None), REVISIONS[-1]

    def _refuse_foreign(self, connection: Any) -> bool:
        """Refuse another application's database: tables mangograde does not make, or
        tables of its names without its schema revision. Whether it has one."""
        from sqlalchemy import inspect

        tables = set(inspect(connection).get_table_names())
        ours = set(TABLES) | {"alembic_version"}
        foreign = sorted(t for t in tables - ours if not t.startswith("_alembic_tmp_"))
        if not foreign and (not tables or "alembic_version" in tables):
            return bool(tables)
        raise RecordsError(
            f"The database {self.where} holds tables mangograde did not make "
            f"({listing(foreign or sorted(tables), 5)}): it belongs to another application, "
            "and mangograde writes nothing into it. Point --record / --db at an empty "
            "database or one mangograde made (mangograde db upgrade URL starts an empty one)."
        )

    def _unusable(self, exc: Exception) -> RecordsError:
        reason = _reason(exc)
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if path and "not a database" in reason:
            return RecordsError(
                f"The records database {self.where} cannot be opened: {path} is not an SQLite "
                "database (file is not a database). Give the --db / --record that serve or "
                "predict --record wrote, or the name of a new file."
            )
        return RecordsError(f"The records database {self.where} cannot be opened: {reason}")

    def _journal(self) -> None:
        """SQLite: write-ahead logging, so readers never wait for the writer. It stays
        with the file, so it is switched on only in a database mangograde owns (or is
        about to give its schema), never in another application's."""
        if self.engine.dialect.name != "sqlite":
            return
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                connection.commit()
        except SQLAlchemyError as exc:
            raise self._unusable(exc) from None

    def upgrade(self, revision: str = "head") -> tuple[str | None, str]:
        """Bring the schema to ``revision`` (default: the newest); the revisions before and
        after. A database of a newer mangograde, or another application's, is refused."""
        from alembic import command
        from sqlalchemy.exc import SQLAlchemyError

        before, head = self.revision()
        self._refuse_newer(before)
        self._journal()
        try:
            with self._connect() as connection, connection.begin():
                command.upgrade(self._alembic(connection), revision)
        except SQLAlchemyError as exc:
            raise RecordsError(f"The records schema could not be written in {self.where}: "
                               f"{_reason(exc)}") from None  # fmt: skip
        return before, self.revision()[0] or head

    def prepare(self) -> None:
        """Ready to record: an empty database gets the schema; an older one or a newer one
        (or another application's) is refused with what to do."""
        current, head = self.revision()
        if current is None:
            self.upgrade()
            return
        self._refuse_newer(current)
        if current != head:
            raise RecordsError(
                f"The records database {self.where} is at schema {current}; this mangograde "
                f"writes {head}. Upgrade it first: mangograde db upgrade '{self.where}'."
            )
        self._journal()

    def _refuse_newer(self, current: str | None) -> None:
        if current is not None and current not in REVISIONS:
            raise RecordsError(
                f"The records database {self.where} has schema {current}, written by a newer "
                "mangograde: upgrade mangograde on this machine, or record into another "
                "database."
            )

    def _connect(self) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return self.engine.connect()
        except DBAPIError as exc:  # OperationalError, or DatabaseError: not a database
            raise self._unusable(exc) from None

    # -- writing --------------------------------------------------------------------------

    def record(
        self,
        lot: str,
        model: ModelIdentity,
        photos: Sequence[PhotoRecord],
        fruits: Sequence[FruitRecord] = (),
        when: datetime | None = None,
    ) -> list[int]:
        """Keep a batch of gradings (and its fruits) in lot ``lot``, created when new, in
        one transaction: all of them or none. The gradings' ids, in order."""
        return self.record_many([Batch(lot, model, list(photos), list(fruits), when)])[0]

    def record_many(self, batches: Sequence[Batch]) -> list[list[int]]:
        """Several batches (e.g. the requests waiting for the writer) in one transaction:
        all of them or none. Each batch's grading ids, in order. A batch for a closed lot
        refuses the whole transaction (:class:`mangograde.records.LotClosed`) before
        anything is written."""
        from sqlalchemy.exc import SQLAlchemyError

        from .lot_state import refuse_closed

        for batch in batches:
            batch.check()
        try:
            with self.engine.begin() as connection:
                refuse_closed(connection, [batch.lot for batch in batches])
                return [self._insert(connection, batch) for batch in batches]
        except SQLAlchemyError as exc:
            raise RecordsError(f"The gradings could not be recorded in {self.where}: "
                               f"{_reason(exc)}") from None  # fmt: skip

    def _insert(self, connection: Any, batch: Batch) -> list[int]:
        from sqlalchemy import insert

        from .schema import FruitGrading, Grading

        when = batch.when or _utc_now()
        lot_id = self._lot_id(connection, batch.lot, when)
        fruit_ids: dict[str, int] = {}
        if batch.fruits:
            table = FruitGrading.__table__
            rows = [{"time": when, "lot_id": lot_id, "fruit": f.fruit, "grade": f.grade,
                     "probabilities": f.probabilities, "check": f.check, "reason": f.reason}
                    for f in batch.fruits]  # fmt: skip
            found = connection.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
            ).scalars()
            fruit_ids = dict(zip([f.fruit for f in batch.fruits], found, strict=True))
        if not batch.photos:
            return []
        table = Grading.__table__
        model = batch.model
        rows = [
            {"time": when, "lot_id": lot_id, "fruit": p.fruit,
             "fruit_grading_id": fruit_ids.get(p.fruit or ""), "photo": p.photo,
             "sha256": p.sha256, "size": p.size, "run": model.run,
             "model_sha256": model.sha256, "grade": p.grade, "probabilities": p.probabilities,
             "check": p.check, "reason": p.reason, "familiarity": p.familiarity,
             "latency_ms": p.latency_ms}
            for p in batch.photos
        ]  # fmt: skip
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in connection.execute(statement, rows).scalars()]

    def _lot_id(self, connection: Any, name: str, when: datetime) -> int:
        """The lot's id; a new lot is created (two writers at once: one creates it)."""
        from sqlalchemy import insert, select
        from sqlalchemy.exc import IntegrityError

        from .schema import Lot

        found = connection.scalar(select(Lot.id).where(Lot.name == name))
        if found is not None:
            return int(found)
        try:
            with connection.begin_nested():
                return int(connection.scalar(
                    insert(Lot).values(name=name, created=when).returning(Lot.id)))  # fmt: skip
        except IntegrityError:  # created meanwhile by another writer
            return int(connection.scalar(select(Lot.id).where(Lot.name == name)))

    # -- reading --------------------------------------------------------------------------

    def lot_names(self) -> list[str]:
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from .schema import Lot

        with Session(self.engine) as session:
            return list(session.scalars(select(Lot.name).order_by(Lot.created, Lot.id)))

    def _no_lot(self, name: str) -> SettingsError:
        known = ", ".join(self.lot_names()[:5]) or "none yet"
        return SettingsError(f"No lot named {name!r} in {self.where} (lots: {known}).")

    def summary(self, name: str, detail: bool = False) -> LotSummary:
        """The lot's summary (:func:`mangograde.records.summary.lot_summary`)."""
        found = lot_summary(self.engine, name, detail)
        if found is None:
            raise self._no_lot(name)
        return found

    def gradings(self, name: str) -> list[dict[str, Any]]:
        """Every grading of lot ``name`` in order, with its latest correction if any."""
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from .schema import Correction, Grading, Lot

        latest = (
            select(Correction.grading_id, func.max(Correction.id).label("last"))
            .group_by(Correction.grading_id)
            .subquery()
        )
        columns = [Grading.id, Grading.time, Grading.fruit, Grading.photo, Grading.sha256,
                   Grading.size, Grading.grade, Correction.grade, Correction.operator,
                   Grading.check, Grading.reason, Grading.familiarity, Grading.run,
                   Grading.model_sha256, Grading.latency_ms, Grading.probabilities]  # fmt: skip
        with Session(self.engine) as session:
            if session.scalar(select(Lot.id).where(Lot.name == name)) is None:
                raise self._no_lot(name)
            rows = session.execute(
                select(*columns)
                .join(Lot, Lot.id == Grading.lot_id)
                .outerjoin(latest, latest.c.grading_id == Grading.id)
                .outerjoin(Correction, Correction.id == latest.c.last)
                .where(Lot.name == name)
                .order_by(Grading.id)
            ).all()
        names = ("id", "time", "fruit", "photo", "sha256", "size", "grade", "final_grade",
                 "corrected_by", "check", "reason", "familiarity", "run", "model_sha256",
                 "latency_ms")  # fmt: skip
        found = []
        for row in rows:
            record = dict(zip(names, row[:-1], strict=True))
            record["fruit"] = record["fruit"] or ""
            record["final_grade"] = record["final_grade"] or record["grade"]
            record["corrected_by"] = record["corrected_by"] or ""
            record["reason"] = record["reason"] or ""
            found.append(record | {f"p_{k}": v for k, v in row[-1].items()})
        return found

    def prune(self, before: datetime, dry_run: bool = False) -> dict[str, int]:
        """Delete gradings (their corrections and fruits) older than ``before``, and lots
        left empty (with their closings); how many of each (nothing is deleted with
        ``dry_run``)."""
        from sqlalchemy import delete, exists, func, select
        from sqlalchemy.orm import Session

        from .schema import Correction, FruitGrading, Grading, Lot, LotEvent

        before = as_utc(before)
        old = select(Grading.id).where(Grading.time < before)
        with Session(self.engine) as session, session.begin():
            counts = {
                "gradings": session.scalar(select(func.count()).select_from(old.subquery())),
                "corrections": session.scalar(
                    select(func.count()).where(Correction.grading_id.in_(old))),
                "fruits": session.scalar(
                    select(func.count()).where(FruitGrading.time < before)),
            }  # fmt: skip
            if not dry_run:
                session.execute(delete(Correction).where(Correction.grading_id.in_(old)))
                session.execute(delete(Grading).where(Grading.time < before))
                session.execute(delete(FruitGrading).where(FruitGrading.time < before))
            empty = ~exists().where(Grading.lot_id == Lot.id, Grading.time >= before)
            counts["lots"] = session.scalar(select(func.count()).where(empty, Lot.created < before))
            if not dry_run:
                gone = select(Lot.id).where(empty, Lot.created < before)
                session.execute(delete(LotEvent).where(LotEvent.lot_id.in_(gone)))
                session.execute(delete(Lot).where(empty, Lot.created < before))
            if dry_run:
                session.rollback()
        return {k: int(v or 0) for k, v in counts.items()}


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # journal_mode=WAL stays with the file: Store._journal, only in mangograde's databases
    cursor.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_existing(url: str) -> Store:
    """An existing records database of the newest schema, to read or prune (never created
    here: a missing SQLite file or an empty database is refused)."""
    store = Store(url)
    path = store.engine.url.database
    if store.engine.dialect.name == "sqlite" and path and not Path(path).is_file():
        raise SettingsError(f"No records database at {path}: give the --db that serve or "
                            "predict --record wrote.")  # fmt: skip
    if store.revision()[0] is None:
        raise SettingsError(f"{store.where} holds no mangograde records yet.")
    store.prepare()
    return store


def open_store(url: str, prepare: bool = True) -> Store:
    """The records database at ``url``, ready to record (see :meth:`Store.prepare`)."""
    store = Store(url)
    if prepare:
        store.prepare()
    return store
