"""Closing a lot (issue 38, point 2): ``lots close`` / ``lots reopen`` and
``POST /v1/lots/{lot}/close`` append rows; a closed lot refuses gradings and corrections
(409 from the API, naming who closed it and when); the migration that adds the rows
upgrades a database of the previous revision in place. SQLite and a real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import Future

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde.records import (  # noqa: E402
    LotClosed,
    ModelIdentity,
    NoSuchRecord,
    PhotoRecord,
    Store,
    close_lot,
    closing_of,
    correct,
    events_of,
    open_store,
    reopen_lot,
)

from .test_cli import assert_clean_failure, run  # noqa: E402

MODEL = ModelIdentity("colour", "ef" * 32)


def _photo(name: str, grade: str = "A") -> PhotoRecord:
    return PhotoRecord(name, hashlib.sha256(name.encode()).hexdigest(), 10, grade,
                       {"A": 0.6, "B": 0.3, "C": 0.1})  # fmt: skip


def _event_rows(url: str) -> list[tuple]:
    from sqlalchemy import select

    from mangograde.records.schema import LotEvent

    with Store(url).engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(LotEvent).order_by(LotEvent.id))]


def _all_event_rows(url: str) -> list[tuple]:
    from sqlalchemy import text

    with Store(url).engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text("SELECT * FROM lot_events ORDER BY id"))]


# -- the migration --------------------------------------------------------------------------


def test_a_database_of_revision_0002_is_upgraded_in_place_and_keeps_its_lots(db_url):
    from sqlalchemy import inspect

    from .test_records import _downgraded

    store = open_store(db_url)
    assert store.revision() == ("0003", "0003")
    ids = store.record("L", MODEL, [_photo("a.jpg"), _photo("b.jpg", "B")])
    correct(store, ids[0], "C", "ana")
    _downgraded(db_url, "0002")  # a database written by the previous release, with its rows
    with Store(db_url).engine.connect() as connection:
        assert "lot_events" not in inspect(connection).get_table_names()
    assert_clean_failure(run("lots", "close", "L", "--by", "ana", "--db", db_url),
                         "mangograde db upgrade")  # fmt: skip
    upgraded = run("db", "upgrade", db_url)
    assert upgraded.exit_code == 0 and "0002 -> 0003" in upgraded.output, upgraded.output
    store = open_store(db_url)
    summary = store.summary("L")
    assert summary.gradings == 2 and summary.mix == {"B": 1, "C": 1} and summary.corrections == 1
    assert summary.closed_by is None and events_of(store, "L") == []
    closed = run("lots", "close", "L", "--by", "ana", "--db", db_url)
    assert closed.exit_code == 0, closed.output
    assert closing_of(store, "L").operator == "ana"  # type: ignore[union-attr]
    again = run("db", "upgrade", db_url)
    assert again.exit_code == 0 and "nothing to do" in again.output


# -- the command line -----------------------------------------------------------------------


def test_a_closed_lot_refuses_gradings_and_corrections_until_it_is_reopened(db_url):
    store = open_store(db_url)
    ids = store.record("L1", MODEL, [_photo("a.jpg")])
    store.record("L2", MODEL, [_photo("b.jpg")])
    closed = run("lots", "close", "L1", "--by", "ana", "--db", db_url)
    assert closed.exit_code == 0, closed.output
    assert "Closed lot L1: by ana at " in closed.output and "(UTC)" in closed.output
    standing = closing_of(store, "L1")
    assert standing is not None and standing.operator == "ana" and standing.kind == "closed"
    assert standing.time.tzinfo is not None and standing.why is None
    with pytest.raises(LotClosed, match="closed by ana at .* UTC") as refused:
        store.record("L1", MODEL, [_photo("c.jpg")])
    assert (refused.value.lot, refused.value.by) == ("L1", "ana")
    assert refused.value.when == standing.time
    # one transaction: the open lot's batch beside it is not written either
    from mangograde.records import Batch

    with pytest.raises(LotClosed):
        store.record_many([Batch("L2", MODEL, [_photo("d.jpg")]),
                           Batch(" L1 ", MODEL, [_photo("e.jpg")])])  # fmt: skip
    assert store.summary("L1").gradings == 1 and store.summary("L2").gradings == 1
    with pytest.raises(LotClosed, match="closed by ana"):
        correct(store, ids[0], "B", "ben")
    assert store.summary("L1").corrections == 0
    shown = run("lots", "show", "L1", "--db", db_url, "--timezone", "UTC")
    assert shown.exit_code == 0 and "Closed by ana at " in shown.output, shown.output
    assert f"{standing.time:%Y-%m-%d %H:%M} (UTC)" in shown.output  # in the zone asked
    summary = store.summary("L1")
    assert summary.closed_by == "ana" and summary.closed_at == standing.time
    assert store.summary("L2").closed_by is None

    reopened = run("lots", "reopen", "L1", "--by", "ben", "--why", "two crates came back",
                   "--db", db_url)  # fmt: skip
    assert reopened.exit_code == 0, reopened.output
    assert "Reopened lot L1: by ben at " in reopened.output
    assert "because: two crates came back" in reopened.output
    assert closing_of(store, "L1") is None and store.summary("L1").closed_by is None
    assert "Closed by" not in run("lots", "show", "L1", "--db", db_url).output
    assert len(store.record("L1", MODEL, [_photo("c.jpg")])) == 1
    assert correct(store, ids[0], "B", "ben").grade == "B"
    first = _all_event_rows(db_url)[0]
    assert run("lots", "close", "L1", "--by", "carla", "--db", db_url).exit_code == 0
    events = events_of(store, "L1")
    assert [(e.kind, e.operator, e.why) for e in events] == [
        ("closed", "ana", None), ("reopened", "ben", "two crates came back"),
        ("closed", "carla", None)]  # fmt: skip
    assert events[0].time <= events[1].time <= events[2].time
    rows = _all_event_rows(db_url)
    assert len(rows) == 3 and rows[0] == first  # appended: the first row is as it was
    assert closing_of(store, "L1").operator == "carla"  # type: ignore[union-attr]


def test_bad_closings_and_reopenings_are_refused_and_nothing_is_written(db_url):
    store = open_store(db_url)
    store.record("L", MODEL, [_photo("a.jpg")])
    store.record("open", MODEL, [_photo("b.jpg")])
    close_lot(store, "L", "ana")
    before = _all_event_rows(db_url)

    def refused(*args: str, says: str) -> None:
        assert_clean_failure(run("lots", *args, "--db", db_url), says)
        assert _all_event_rows(db_url) == before

    refused("close", "nowhere", "--by", "ana", says="No lot named 'nowhere'")
    refused("close", "L", "--by", "ben", says="already closed, by ana at ")
    refused("reopen", "open", "--by", "ana", "--why", "x", says="is open: there is nothing")
    refused("reopen", "nowhere", "--by", "ana", "--why", "x", says="No lot named")
    refused("reopen", "L", "--by", "ana", "--why", "   ", says="empty --why")
    refused("reopen", "L", "--by", "ana", "--why", "w" * 20_000, says="at most 10,000")
    refused("close", "open", "--by", "an\x1ba", says="control characters")
    refused("close", "open", "--by", "  ", says="empty operator name")
    refused("reopen", "L", "--by", "b\u202een", "--why", "x", says="control characters")
    refused("close", "op\nen", "--by", "ana", says="control characters")
    missing = run("lots", "reopen", "L", "--by", "ana", "--db", db_url)
    assert missing.exit_code != 0 and "--why" in missing.output
    with pytest.raises(NoSuchRecord):
        closing_of(store, "nowhere")
    with pytest.raises(NoSuchRecord):
        events_of(store, "nowhere")
    assert _event_rows(db_url) and closing_of(store, "open") is None


def test_prune_takes_a_closed_lots_events_with_the_lot(db_url):
    from datetime import datetime, timezone

    store = open_store(db_url)
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    store.record("old", MODEL, [_photo("a.jpg")], when=old)
    store.record("kept", MODEL, [_photo("b.jpg")])
    close_lot(store, "old", "ana")
    close_lot(store, "kept", "ana")
    assert store.prune(datetime(2021, 1, 1, tzinfo=timezone.utc))["lots"] == 1
    assert store.lot_names() == ["kept"] and closing_of(store, "kept") is not None
    assert len(_all_event_rows(db_url)) == 1


def test_the_writer_refuses_only_the_requests_for_the_closed_lot(db_url):
    """serve writes every waiting request in one transaction: a request for a closed lot
    is refused alone, the others are kept."""
    from mangograde.records import Batch
    from mangograde.service.recorder import Recorder

    recorder = Recorder(db_url, MODEL)
    try:
        recorder.store.record("shut", MODEL, [_photo("a.jpg")])
        close_lot(recorder.store, "shut", "ana")
        waiting = [(Batch(lot, MODEL, [_photo(f"{lot}-{i}.jpg")]), Future())
                   for i, lot in enumerate(["open", "shut", "other", "shut"])]  # fmt: skip
        recorder._write(waiting)  # type: ignore[arg-type]
        assert [len(f.result()) for b, f in waiting if b.lot != "shut"] == [1, 1]
        for batch, done in waiting:
            if batch.lot == "shut":
                assert isinstance(done.exception(), LotClosed)
        assert recorder.store.summary("shut").gradings == 1
    finally:
        recorder.close()


def test_predict_refuses_to_record_into_a_closed_lot_and_writes_nothing(colour_run, db_url,
                                                                        tmp_path):  # fmt: skip
    root, colour = colour_run
    photos = [root / "train" / "mango_00000.jpg"]
    first = run("predict", colour, *photos, "--record", db_url, "--lot", "bin 7",
                "--out", tmp_path / "p.csv")  # fmt: skip
    assert first.exit_code == 0, first.output
    assert run("lots", "close", "bin 7", "--by", "ana", "--db", db_url).exit_code == 0
    refused = run("predict", colour, *photos, "--record", db_url, "--lot", "bin 7",
                  "--out", tmp_path / "q.csv")  # fmt: skip
    assert_clean_failure(refused, "Lot 'bin 7' was closed by ana at ", "lots reopen")
    assert not (tmp_path / "q.csv").exists()
    assert open_store(db_url).summary("bin 7").gradings == 1


# -- the API --------------------------------------------------------------------------------


def _upload(root, names):
    return [("files", (n, (root / "train" / n).read_bytes(), "image/jpeg")) for n in names]


def test_the_api_closes_a_lot_behind_the_key_and_then_answers_409(colour_run, db_url):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    keys = {"ana": "key-of-ana", "ben": "key-of-ben"}
    ana, ben = {"X-API-Key": "key-of-ana"}, {"X-API-Key": "key-of-ben"}
    with TestClient(create_app(ServeOptions(run=colour, db=db_url, api_keys=keys))) as client:
        body = client.post("/v1/grade", files=_upload(root, ["mango_00000.jpg"]),
                           data={"lot": "L", "fruit": "f1"}, headers=ana).json()  # fmt: skip
        grading = body["results"][0]["grading_id"]
        tally = client.get("/v1/lots/L", headers=ana).json()
        assert tally["fruit_mix"] == {body["fruits"][0]["grade"]: 1}
        assert tally["closed_by"] is None and tally["closed_at"] is None
        assert client.post("/v1/lots/L/close").status_code == 401
        spoofed = client.post("/v1/lots/L/close", json={"operator": "Carla"}, headers=ben)
        assert spoofed.status_code == 403 and "ben's" in spoofed.json()["detail"]
        assert client.get("/v1/lots/L", headers=ana).json()["closed_by"] is None
        closed = client.post("/v1/lots/L/close", headers=ana)
        assert closed.status_code == 201, closed.text
        event = closed.json()
        assert (event["lot"], event["kind"], event["operator"]) == ("L", "closed", "ana")
        assert event["time"].endswith("+00:00")
        tally = client.get("/v1/lots/L", headers=ana).json()
        assert tally["closed_by"] == "ana" and tally["closed_at"] == event["time"]
        more = client.post("/v1/grade", files=_upload(root, ["mango_00001.jpg"]),
                           data={"lot": "L"}, headers=ben)  # fmt: skip
        assert more.status_code == 409, more.text
        detail = more.json()["detail"]
        assert "closed by ana at " in detail and event["time"][:16].replace("T", " ") in detail
        fixed = client.post(f"/v1/gradings/{grading}/corrections", json={"grade": "A"},
                            headers=ben)  # fmt: skip
        assert fixed.status_code == 409 and "closed by ana" in fixed.json()["detail"]
        twice = client.post("/v1/lots/L/close", json={"operator": "ben"}, headers=ben)
        assert twice.status_code == 409 and "already closed, by ana" in twice.json()["detail"]
        assert client.post("/v1/lots/nowhere/close", headers=ana).status_code == 404
        elsewhere = client.post("/v1/grade", files=_upload(root, ["mango_00001.jpg"]),
                                data={"lot": "L-2"}, headers=ben)  # fmt: skip
        assert elsewhere.status_code == 200 and elsewhere.json()["lot"] == "L-2"
        assert "/v1/lots/{lot}/close" in client.get("/openapi.json").json()["paths"]
    store = open_store(db_url)
    assert store.summary("L").gradings == 1 and store.summary("L").corrections == 0
    assert len(events_of(store, "L")) == 1
    reopen_lot(store, "L", "ana", "graded into the wrong lot")
    with TestClient(create_app(ServeOptions(run=colour, db=db_url))) as client:  # no keys
        again = client.post("/v1/grade", files=_upload(root, ["mango_00002.jpg"]),
                            data={"lot": "L"})  # fmt: skip
        assert again.status_code == 200 and client.get("/v1/lots/L").json()["closed_by"] is None
        nameless = client.post("/v1/lots/L/close")
        assert nameless.status_code == 422 and "operator" in nameless.json()["detail"]
        bad = client.post("/v1/lots/L/close", json={"operator": "a\x00b"})
        assert bad.status_code == 422 and "control characters" in bad.json()["detail"]
        named = client.post("/v1/lots/L/close", json={"operator": "ana"})
        assert named.status_code == 201 and named.json()["operator"] == "ana"
    assert [e.kind for e in events_of(store, "L")] == ["closed", "reopened", "closed"]


# -- the page -------------------------------------------------------------------------------

CHROMIUM = os.environ.get("MANGOGRADE_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (see "
                    "tests/test_service_page.py)")  # fmt: skip
def test_the_page_shows_fruits_by_grade_and_closes_the_lot(colour_run, tmp_path):
    """Fruits by grade on the lot line right after an answer; "Close the lot" asks first,
    then the lot line names who closed it, and grading or correcting in it says why not."""
    pytest.importorskip("fastapi")
    sync_api = pytest.importorskip("playwright.sync_api")
    from mangograde.service import ServeOptions, create_app

    from .service_helpers import live_server

    root, colour = colour_run
    db = f"sqlite:///{tmp_path / 'records.db'}"
    views = [str(root / "train" / f"mango_0000{i}.jpg") for i in range(2)]
    with live_server(create_app(ServeOptions(run=colour, db=db))) as url, \
            sync_api.sync_playwright() as playwright:  # fmt: skip
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 412, "height": 915})
        page.goto(url)
        sync_api.expect(page.locator("#lot")).to_be_visible()
        page.fill("#lot", "Bin 7")
        page.press("#lot", "Tab")
        page.fill("#operator", "Ana")
        page.press("#operator", "Tab")
        assert page.locator("#lot-close").is_hidden()  # nothing graded in it yet
        page.locator("#fruit-mode").check()
        page.locator("#fruit-name").fill("m1")
        page.set_input_files("#pick", views)
        status = page.locator("#fruits .fruit > .status")
        sync_api.expect(status).to_contain_text("grade", timeout=20000)
        grade = status.inner_text().rsplit(" ", 1)[1]
        line = page.locator("#lot-tally")
        sync_api.expect(line).to_contain_text(f"Lot Bin 7: 1 fruit ({grade} 1), 2 photos recorded")
        close = page.locator("#lot-close")
        sync_api.expect(close).to_be_visible()
        page.once("dialog", lambda dialog: dialog.dismiss())
        close.click()
        page.wait_for_timeout(300)
        assert "closed by" not in line.inner_text() and close.is_visible()
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        close.click()
        sync_api.expect(line).to_contain_text("; closed by Ana at ")
        assert asked and "Close lot Bin 7 as Ana?" in asked[0]
        sync_api.expect(close).to_be_hidden()
        sync_api.expect(page.locator("#lot-close-status")).to_have_text("Lot Bin 7 closed by Ana.")
        page.locator("#fruits .fruit .corrections button").first.click()
        sync_api.expect(page.locator("#fruits .corrected").first).to_contain_text(
            "The correction was not kept: Lot 'Bin 7' was closed by Ana at "
        )
        page.locator("#fruit-mode").uncheck()
        page.set_input_files("#pick", [views[0]])
        refused = page.locator("#photos > .photo .status")
        sync_api.expect(refused).to_contain_text("Not graded: Lot 'Bin 7' was closed by Ana at ",
                                                 timeout=20000)  # fmt: skip
        sync_api.expect(line).to_contain_text("2 photos recorded")
        page.screenshot(path=str(tmp_path / "closed.png"), full_page=True)
        browser.close()
    summary = open_store(db).summary("Bin 7")
    assert summary.gradings == 2 and summary.corrections == 0 and summary.closed_by == "Ana"
