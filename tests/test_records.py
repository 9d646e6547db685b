"""The records database: the same suite on SQLite and on a real PostgreSQL cluster."""

from __future__ import annotations

import hashlib
import itertools
import threading
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde.basics.errors import SettingsError  # noqa: E402
from mangograde.records import (  # noqa: E402
    FruitRecord,
    ModelIdentity,
    PhotoRecord,
    RecordsError,
    Store,
    open_store,
)

from .postgres_helpers import new_database, postgres_cluster, why_not  # noqa: E402

MODEL = ModelIdentity("colour", "ab" * 32)
_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    reason = why_not()
    if reason is not None:
        pytest.skip(f"PostgreSQL records tests skipped: {reason}")
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return new_database(request.getfixturevalue("postgres"), f"t{next(_numbers)}")


def _photo(name: str, grade: str = "A", fruit: str | None = None, **extra) -> PhotoRecord:
    data = name.encode()
    return PhotoRecord(name, hashlib.sha256(data).hexdigest(), len(data), grade,
                       {"A": 0.7, "B": 0.2, "C": 0.1}, fruit=fruit, **extra)  # fmt: skip


def _downgraded(url: str, revision: str) -> None:
    from alembic import command

    store = Store(url)
    with store.engine.connect() as connection, connection.begin():
        command.downgrade(store._alembic(connection), revision)


def test_an_empty_database_gets_the_schema_and_older_or_newer_ones_are_refused(db_url):
    from sqlalchemy import text

    store = open_store(db_url)
    assert store.revision() == ("0002", "0002")
    _downgraded(db_url, "0001")  # a database written by the previous release
    with pytest.raises(RecordsError, match="mangograde db upgrade"):
        open_store(db_url)
    from .test_cli import run

    upgraded = run("db", "upgrade", db_url)
    assert upgraded.exit_code == 0 and "0001 -> 0002" in upgraded.output
    assert open_store(db_url).record("L", MODEL, [_photo("a.jpg")]) == [1]
    with Store(db_url).engine.connect() as connection, connection.begin():
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RecordsError, match="newer mangograde"):
        open_store(db_url)
    refused = run("db", "upgrade", db_url)
    assert refused.exit_code != 0 and "newer mangograde" in refused.output


def test_a_batch_is_kept_whole_with_its_fruits_and_corrections_are_appended(db_url):
    from sqlalchemy.orm import Session

    from mangograde.records.schema import Correction

    store = open_store(db_url)
    photos = [_photo("a.jpg", "A", "f1"), _photo("b.jpg", "B", "f1"),
              _photo("c.jpg", "C", check=True, reason="unfamiliar", familiarity=31.5)]  # fmt: skip
    ids = store.record("lot-1", MODEL, photos, [FruitRecord("f1", "A", {"A": 0.6, "B": 0.4})])
    assert len(ids) == 3
    with Session(store.engine) as session, session.begin():
        now = datetime.now(timezone.utc)
        session.add(Correction(grading_id=ids[2], operator="ana", grade="B", time=now))
        session.add(Correction(grading_id=ids[2], operator="ben", grade="A", time=now))
    summary = store.summary("lot-1", detail=True)
    assert summary.gradings == 3 and summary.mix == {"A": 2, "B": 1}  # the latest stands
    assert summary.checks == {"unfamiliar": 1} and summary.corrections == 2
    assert summary.models == {"colour (abababababab)": 3}
    assert summary.fruits[0]["fruit"] == "f1" and summary.fruits[0]["photos"] == 2
    rows = store.gradings("lot-1")
    assert [r["final_grade"] for r in rows] == ["A", "B", "A"] and rows[2]["grade"] == "C"
    assert rows[2]["corrected_by"] == "ben" and rows[2]["familiarity"] == 31.5
    with pytest.raises(RecordsError):  # a broken row: nothing of the batch is kept
        store.record("lot-1", MODEL, [_photo("d.jpg"), _photo("e.jpg", None)])  # type: ignore[arg-type]
    assert store.summary("lot-1").gradings == 3


@pytest.mark.parametrize(
    "name", ['O\'Brien "lot"', "x'); DROP TABLE lots;--", "Mangúe 芒果 🥭", "a" * 200]
)
def test_any_lot_name_is_kept_exactly(db_url, name):
    store = open_store(db_url)
    store.record(name, MODEL, [_photo("a.jpg", fruit=name)])
    assert store.lot_names() == [name]
    assert store.gradings(name)[0]["fruit"] == name


def test_names_that_cannot_be_kept_are_refused(db_url):
    store = open_store(db_url)
    for bad, message in (("", "empty lot"), ("   ", "empty lot"), ("a" * 10_000, "10000 char"),
                         ("a\nb", "control characters")):  # fmt: skip
        with pytest.raises(SettingsError, match=message):
            store.record(bad, MODEL, [_photo("a.jpg")])
    with pytest.raises(SettingsError, match="No lot named"):
        store.summary("nowhere")


def test_sixteen_writers_on_one_lot_lose_and_double_nothing(db_url):
    store = open_store(db_url)
    errors = []

    def writer(number: int) -> None:
        try:
            for i in range(10):
                store.record("busy", MODEL, [_photo(f"{number}-{i}.jpg")])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = store.gradings("busy")
    assert len(rows) == 160 and len({r["photo"] for r in rows}) == 160
    assert store.lot_names() == ["busy"]


def test_prune_deletes_old_gradings_and_empty_lots_only(db_url):
    store = open_store(db_url)
    long_ago = datetime(2026, 1, 5, tzinfo=timezone.utc)
    store.record("old", MODEL, [_photo("a.jpg"), _photo("b.jpg")], when=long_ago)
    store.record("new", MODEL, [_photo("c.jpg")])
    cut = datetime.now(timezone.utc) - timedelta(days=30)
    assert store.prune(cut, dry_run=True) == {"gradings": 2, "corrections": 0, "fruits": 0,
                                              "lots": 1}  # fmt: skip
    assert sorted(store.lot_names()) == ["new", "old"]
    assert store.prune(cut)["gradings"] == 2
    assert store.lot_names() == ["new"] and store.summary("new").gradings == 1


def test_a_database_that_cannot_be_opened_is_named(tmp_path):
    with pytest.raises(RecordsError, match="cannot be opened"):
        open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'r.db'}")
    with pytest.raises(SettingsError, match="not a database URL"):
        open_store("records.db")
