"""The records database: the same suite on SQLite and on a real PostgreSQL cluster."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

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
    to_check,
)

MODEL = ModelIdentity("colour", "ab" * 32)


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
    assert store.revision() == ("0003", "0003")
    _downgraded(db_url, "0001")  # a database written by the previous release
    with pytest.raises(RecordsError, match="mangograde db upgrade"):
        open_store(db_url)
    from .test_cli import run

    upgraded = run("db", "upgrade", db_url)
    assert upgraded.exit_code == 0 and "0001 -> 0003" in upgraded.output
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
    # the unfamiliar photo was corrected, so nothing is left to check (issue 35: one
    # number, the to-check list's); it still counts as unfamiliar
    assert summary.checks == {} and summary.checks_left == len(to_check(store, "lot-1")) == 0
    assert summary.unfamiliar == 1 and summary.corrections == 2
    assert summary.fruit_mix == {"A": 1}
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


def test_predict_records_a_batch_and_lots_report_it(colour_run, db_url, tmp_path):
    import shutil

    from .test_cli import assert_clean_failure, run

    root, colour = colour_run
    photos = tmp_path / "fruits"
    layout = (("f1", ["mango_00000.jpg", "mango_00001.jpg"]), ("f2", ["mango_00002.jpg"]))
    for fruit, names in layout:
        (photos / fruit).mkdir(parents=True)
        for name in names:
            shutil.copy(root / "train" / name, photos / fruit / name)
    done = run("predict", colour, photos, "--fruit-folders", "--record", db_url, "--lot",
               "bin 7", "--out", tmp_path / "p.csv")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Recorded 3 gradings in lot bin 7" in done.output
    store = open_store(db_url)
    rows = store.gradings("bin 7")
    expected = hashlib.sha256((photos / "f1" / "mango_00000.jpg").read_bytes()).hexdigest()
    assert [r["photo"] for r in rows] == ["mango_00000.jpg", "mango_00001.jpg", "mango_00002.jpg"]
    assert rows[0]["sha256"] == expected and rows[0]["run"] == "colour"
    assert all(r["familiarity"] is not None for r in rows)
    from .test_cli_models import read_csv

    predicted = {r["image_id"]: r for r in read_csv(tmp_path / "p.csv")}
    assert all(predicted[r["photo"]]["label"] in (r["grade"], "check") for r in rows)
    assert [f["photos"] for f in store.summary("bin 7", detail=True).fruits] == [2, 1]
    listed = run("lots", "list", "--db", db_url)
    assert listed.exit_code == 0 and "bin 7" in listed.output
    shown = run("lots", "show", "bin 7", "--db", db_url)
    assert shown.exit_code == 0 and "3 photos graded" in shown.output
    page = tmp_path / "lot.html"
    assert run("lots", "report", "bin 7", "--db", db_url, "--out", page).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "Lot bin 7" in text and "<script" not in text and "f1" in text
    table = tmp_path / "lot.csv"
    assert run("lots", "report", "bin 7", "--db", db_url, "--out", table).exit_code == 0
    assert len([r for r in read_csv(table) if r["id"].isdigit()]) == 3  # then the digests
    again = run("lots", "report", "bin 7", "--db", db_url, "--out", table)
    assert_clean_failure(again, "exists")  # never over a file it did not create
    assert_clean_failure(run("lots", "show", "nope", "--db", db_url), "No lot named 'nope'")
    missing = tmp_path / "missing.db"
    assert_clean_failure(run("lots", "list", "--db", f"sqlite:///{missing}"), "No records database")
    assert not missing.exists()  # reading never creates a database
    alone = run("predict", colour, photos, "--lot", "x", "--out", tmp_path / "q.csv")
    assert_clean_failure(alone, "--record URL and --lot NAME go together")
    pruned = run("lots", "prune", "--before", "2099-01-01", "--dry-run", "--db", db_url)
    assert pruned.exit_code == 0 and "Would delete 3 gradings" in pruned.output
    assert store.summary("bin 7").gradings == 3


def _upload(root, names):
    return [("files", (n, (root / "train" / n).read_bytes(), "image/jpeg")) for n in names]


def test_serve_records_each_request_before_answering(colour_run, db_url):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    names = ["mango_00000.jpg", "mango_00001.jpg"]
    with TestClient(create_app(ServeOptions(run=colour, db=db_url))) as client:
        files = [*_upload(root, names), ("files", ("cut.jpg", b"\xff\xd8 not a photo"))]
        answer = client.post("/v1/grade", files=files, data={"lot": "Lot «7»", "fruit": "f9"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["lot"] == "Lot «7»"
        ids = [r.get("grading_id") for r in body["results"]]
        assert ids[0] and ids[1] and ids[2] is None  # the broken upload was not graded
        plain = client.post("/v1/grade", files=_upload(root, names[:1])).json()
        assert plain["lot"] == "unassigned"
        for bad in ("   ", "a" * 10_000):
            refused = client.post("/v1/grade", files=_upload(root, names[:1]), data={"lot": bad})
            assert refused.status_code == 422 and "lot name" in refused.text
        long_fruit = {"lot": "L", "fruit": "f" * 10_000}
        refused = client.post("/v1/grade", files=_upload(root, names[:1]), data=long_fruit)
        assert refused.status_code == 422 and "fruit name of 10000 characters" in refused.text
    store = open_store(db_url)
    if db_url.startswith("sqlite"):
        from sqlalchemy import text

        with store.engine.connect() as connection:  # readers never wait for the writer
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    rows = store.gradings("Lot «7»")
    assert [r["id"] for r in rows] == ids[:2] and [r["photo"] for r in rows] == names
    assert rows[0]["sha256"] == hashlib.sha256((root / "train" / names[0]).read_bytes()).hexdigest()
    assert rows[0]["fruit"] == "f9" and rows[0]["latency_ms"] > 0
    assert store.summary("Lot «7»", detail=True).fruits[0]["photos"] == 2
    assert sorted(store.lot_names()) == ["Lot «7»", "unassigned"]


def test_a_database_that_cannot_be_written_answers_503_or_is_counted(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    for failures in ("refuse", "warn"):
        url = f"sqlite:///{tmp_path / f'{failures}.db'}"
        options = ServeOptions(run=colour, db=url, record_failures=failures)
        with TestClient(create_app(options)) as client:
            first = client.post("/v1/grade", files=_upload(root, ["mango_00000.jpg"]))
            assert first.status_code == 200
            with Store(url).engine.connect() as connection, connection.begin():
                connection.execute(text("DROP TABLE corrections"))
                connection.execute(text("DROP TABLE gradings"))
            answer = client.post("/v1/grade", files=_upload(root, ["mango_00001.jpg"]))
            metrics = client.get("/metrics").text
        assert "mangograde_record_failures_total 1.0" in metrics
        if failures == "refuse":
            assert answer.status_code == 503 and "could not be recorded" in answer.text
            assert "grades could not be kept" in answer.text
        else:
            assert answer.status_code == 200 and "grading_id" not in answer.text


def test_postgresql_stopped_in_the_middle_then_back(colour_run):
    pytest.importorskip("fastapi")
    from .postgres_helpers import postgres_cluster, why_not

    reason = why_not()
    if reason is not None:
        pytest.skip(f"PostgreSQL records tests skipped: {reason}")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    with postgres_cluster() as cluster:
        options = ServeOptions(run=colour, db=cluster.url)
        with TestClient(create_app(options)) as client:
            one = _upload(root, ["mango_00000.jpg"])
            assert client.post("/v1/grade", files=one, data={"lot": "L"}).status_code == 200
            cluster.stop()
            down = client.post("/v1/grade", files=one, data={"lot": "L"})
            assert down.status_code == 503 and "could not be recorded" in down.text
            cluster.start()
            back = client.post("/v1/grade", files=one, data={"lot": "L"})
            assert back.status_code == 200, back.text
        assert open_store(cluster.url).summary("L").gradings == 2


def test_serve_keeps_each_graded_photo_by_its_sha256_under_a_size_limit(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")  # not the keeper's: never deleted
    names = [f"mango_0000{i}.jpg" for i in range(4)]
    sizes = [(root / "train" / n).stat().st_size for n in names]
    limit = (sizes[1] + sizes[2] + sizes[3] + 10) / 1024 / 1024  # three fit, not four
    url = f"sqlite:///{tmp_path / 'r.db'}"
    options = ServeOptions(run=colour, db=url, keep_photos=kept, keep_photos_limit_mb=limit)
    with TestClient(create_app(options)) as client:
        for name in names:
            assert client.post("/v1/grade", files=_upload(root, [name])).status_code == 200
        bad = client.post("/v1/grade", files=[("files", ("x.jpg", b"broken"))])
        assert bad.status_code == 415  # not kept: it was not graded
    digests = [r["sha256"] for r in open_store(url).gradings("unassigned")]
    assert sorted(p.name for p in kept.iterdir()) == sorted(
        ["notes.txt", *(f"{d}.jpg" for d in digests[1:])])  # fmt: skip
    again = (kept / f"{digests[3]}.jpg").read_bytes()
    assert again == (root / "train" / names[3]).read_bytes()


def test_serve_with_two_workers_counts_every_workers_photos_and_records_them(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    import subprocess

    import httpx

    from .service_helpers import serve_process

    root, colour = colour_run
    url = f"sqlite:///{tmp_path / 'r.db'}"
    server, base = serve_process(colour, "--workers", "2", "--db", url, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        photo = (root / "train" / "mango_00000.jpg").read_bytes()
        with httpx.Client(base_url=base, timeout=30) as client:  # new connections: both workers
            for _ in range(12):
                files = [("files", ("a.jpg", photo))]
                close = {"Connection": "close"}
                answer = client.post("/v1/grade", files=files, data={"lot": "two"}, headers=close)
                assert answer.status_code == 200, answer.text
            texts = [client.get("/metrics", headers={"Connection": "close"}).text
                     for _ in range(6)]  # whichever worker answers  # fmt: skip
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    for text in texts:
        graded = sum(float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith("mangograde_photos_graded_total"))  # fmt: skip
        assert graded == 12, output
    assert open_store(url).summary("two").gradings == 12
    assert "Recording every grading in sqlite:///" in output


def test_a_killed_server_loses_no_answered_grading_and_leaves_no_half_row(colour_run, tmp_path):
    """``kill -9`` during a load of uploads from 16 clients (120 here; 500 in the issue's
    measure, RESULTS.md): every grading answered 200 is in the database, whole; the
    database opens and checks clean. (And, Linux: serve's grading threads run below its
    event loop's priority, so quick requests are answered while photos are graded.)"""
    pytest.importorskip("fastapi")
    import asyncio
    import os
    import signal
    import subprocess

    import httpx
    from sqlalchemy import text

    from .service_helpers import serve_process

    root, colour = colour_run
    path = tmp_path / "r.db"
    server, base = serve_process(colour, "--db", f"sqlite:///{path}",
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    photos = [(root / "train" / f"mango_{i:05d}.jpg").read_bytes() for i in range(8)]
    answered: list[int] = []
    tasks = Path(f"/proc/{server.pid}/task")
    if tasks.is_dir():
        nice = {int(t.name): int((t / "stat").read_text().rsplit(")", 1)[1].split()[16])
                for t in tasks.iterdir()}  # fmt: skip
        assert nice[server.pid] == 0  # the event loop
        assert sum(n == 10 for n in nice.values()) >= 2  # the grader and the decoders at least
    total = int(os.environ.get("MANGOGRADE_KILL_UPLOADS", "120"))  # 500: RESULTS.md
    uploads = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        for number in uploads:
            if len(answered) >= total // 2 and server.poll() is None:
                os.kill(server.pid, signal.SIGKILL)  # in the middle of the load
            files = [("files", (f"{number}.jpg", photos[number % 8]))]
            try:
                answer = await http.post("/v1/grade", files=files, data={"lot": "load"})
            except httpx.HTTPError:
                continue
            if answer.status_code == 200:
                answered.append(answer.json()["results"][0]["grading_id"])

    async def load() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await asyncio.gather(*(client(http) for _ in range(16)))

    try:
        asyncio.run(load())
    finally:
        server.kill()
        server.wait(30)
    assert total // 2 <= len(answered) < total  # killed in the middle
    print(f"{len(answered)} answered of {total} before kill -9; all in the database")
    store = open_store(f"sqlite:///{path}")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    rows = {r["id"]: r for r in store.gradings("load")}
    assert set(answered) <= set(rows)
    assert all(r["grade"] in ("A", "B", "C") and len(r["sha256"]) == 64 for r in rows.values())


def test_serve_refuses_a_records_database_it_cannot_write(colour_run, tmp_path):
    from sqlalchemy import text

    from .test_cli import assert_clean_failure, run

    _, colour = colour_run
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    open_store(url)
    with Store(url).engine.connect() as connection, connection.begin():
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert_clean_failure(run("serve", colour, "--db", url), "newer mangograde")
    older = f"sqlite:///{tmp_path / 'older.db'}"
    open_store(older)
    _downgraded(older, "0001")
    assert_clean_failure(run("serve", colour, "--db", older), "mangograde db upgrade")
    bad = run("serve", colour, "--record-failures", "maybe")
    assert bad.exit_code != 0 and "refuse or warn" in bad.output


def test_prune_honours_the_offset_of_the_date_it_is_given(db_url):
    """Issue 39, point 1: 2026-12-08T00:00+14:00 is 2026-12-07 10:00 UTC, so gradings at
    11:00 UTC stay and those at 09:00 go; with -12:00 (12:00 UTC next day) both go."""
    from .test_cli import run

    store = open_store(db_url)
    early = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
    late = datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc)
    store.record("early", MODEL, [_photo("a.jpg")], when=early)
    store.record("late", MODEL, [_photo("b.jpg")], when=late)
    east = run("lots", "prune", "--before", "2026-12-08T00:00:00+14:00", "--dry-run",
               "--db", db_url)  # fmt: skip
    assert east.exit_code == 0 and "Would delete 1 gradings" in east.output, east.output
    west = run("lots", "prune", "--before", "2026-12-08T00:00:00-12:00", "--dry-run",
               "--db", db_url)  # fmt: skip
    assert west.exit_code == 0 and "Would delete 2 gradings" in west.output, west.output
    aware = datetime(2026, 12, 8, tzinfo=timezone(timedelta(hours=14)))
    assert store.prune(aware)["gradings"] == 1
    assert store.lot_names() == ["late"]


def test_the_schema_revisions_known_without_alembic_are_alembics_own():
    """Reading a lot checks the schema with one query against store.REVISIONS, never
    importing Alembic (issue 38's start-up time): the list must be Alembic's history."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from mangograde.records.store import MIGRATIONS, REVISIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    history = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert tuple(history) == REVISIONS and script.get_current_head() == REVISIONS[-1]
