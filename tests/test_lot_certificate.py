"""Issue 38, points 3 and 4: the lot certificate (``lots report`` as HTML and CSV, the
SHA-256 of the lot's records, ``lots verify`` naming the rows that differ) and local
time (``--timezone``, zone names in ``--before`` and ``--since``). What touches the
database runs on SQLite and on a real PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde import records  # noqa: E402
from mangograde.basics.errors import SettingsError  # noqa: E402
from mangograde.basics.zones import house_zone, parse_time  # noqa: E402
from mangograde.records import ModelIdentity, PhotoRecord, correct, open_store  # noqa: E402
from mangograde.records.digest import lot_records  # noqa: E402
from mangograde.records.store import FruitRecord  # noqa: E402
from mangograde.workflows.lots import grading_rows  # noqa: E402

from .helpers import write_photo  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402

FAST = ModelIdentity("cnn-fast", "ab" * 32)
SLOW = ModelIdentity("cnn-slow", "cd" * 32)
GRADES = ("Extra_Class", "Class_I", "Class_II")
NINE = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)  # 10:00 in Madrid (UTC+01:00)


def _p(grade: str) -> dict[str, float]:
    return {g: (0.8 if g == grade else 0.1) for g in GRADES}


def _photo(name: str, grade: str, fruit: str | None = None, sha: str | None = None,
           **extra) -> PhotoRecord:  # fmt: skip
    sha = sha or hashlib.sha256(name.encode()).hexdigest()
    return PhotoRecord(name, sha, 1000, grade, _p(grade), fruit=fruit, **extra)


def _lot(url: str, kept: Path | None = None) -> tuple[object, list[int]]:
    """Lot ``bin 7``: fruit f1 (2 photos, Class_I), f2 (1 photo, Extra_Class) by one model,
    then 3 photos one by one by another (one unsure, one unfamiliar, both to check);
    ``kept``: the photos to check are kept there, named by SHA-256 (as serve keeps them)."""
    store = open_store(url)
    shas = {}
    if kept is not None:
        for i, name in enumerate(("u1.jpg", "u2.jpg")):
            path = write_photo(kept / "incoming" / name, seed=i)
            shas[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            path.rename(kept / f"{shas[name]}.jpg")
    fruits = [FruitRecord("f1", "Class_I", _p("Class_I")),
              FruitRecord("f2", "Extra_Class", _p("Extra_Class"))]  # fmt: skip
    ids = store.record("bin 7", FAST, [_photo("a.jpg", "Class_I", "f1"),
                                       _photo("b.jpg", "Class_I", "f1"),
                                       _photo("c.jpg", "Extra_Class", "f2")],
                       fruits, when=NINE)  # fmt: skip
    ids += store.record("bin 7", SLOW, [
        _photo("u1.jpg", "Class_II", sha=shas.get("u1.jpg"), check=True, reason="unsure"),
        _photo("u2.jpg", "Class_I", sha=shas.get("u2.jpg"), check=True, reason="unfamiliar",
               familiarity=1 / 3),
        _photo("d.jpg", "Class_II", latency_ms=12.5),
    ], when=NINE + timedelta(hours=2))  # fmt: skip
    correct(store, ids[0], "Extra_Class", "bo", when=NINE + timedelta(hours=3))
    correct(store, ids[4], "Class_I", "ana", note="a bruise", when=NINE + timedelta(hours=4))
    correct(store, ids[4], "Class_II", "ana", when=NINE + timedelta(hours=5))
    return store, ids


def _close(store, lot: str) -> bool:
    """Close the lot where the records know closings (issue 38.2)."""
    close_lot = getattr(records, "close_lot", None)
    if close_lot is None:
        return False
    close_lot(store, lot, "carmen")
    return True


def _digest_said(output: str) -> str:
    found = re.search(r"SHA-256 of the lot's records: ([0-9a-f]{64})", output)
    assert found, output
    return found.group(1)


def _csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# -- the certificate ------------------------------------------------------------------------


def test_the_certificate_page_states_the_lot_in_the_house_time(db_url, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    store, ids = _lot(db_url, kept)
    closed = _close(store, "bin 7")
    page = tmp_path / "lot.html"
    done = run("lots", "report", "bin 7", "--db", db_url, "--out", page,
               "--timezone", "Europe/Madrid", "--photos", kept)  # fmt: skip
    assert done.exit_code == 0, done.output
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "<h1>Lot bin 7: certificate</h1>" in text
    assert "Times in Europe/Madrid (UTC+01:00)." in text
    # fruits and photos by grade, best first, with the share of each
    by_grade = text[text.index("Fruits by grade, and photos") :]
    assert by_grade.index("Extra_Class") < by_grade.index("Class_I") < by_grade.index("Class_II")
    # Extra_Class: 1 of 2 fruits; photos a (corrected) and c: 2 of 6
    assert "<td>Extra_Class</td><td>1</td><td>50.0%</td><td>2</td><td>33.3%</td>" in text
    assert "<td>first grading</td><td>2026-12-07 10:00</td>" in text
    assert "<td>last grading</td><td>2026-12-07 12:00</td>" in text
    assert "<td>rejects</td><td>0 (0.0%)</td>" in text
    assert "<td>unfamiliar photos</td><td>1 (16.7%)</td>" in text
    assert "<td>left to check by hand</td><td>1</td>" in text  # u2 was corrected since
    # corrections by operator: who changed which photo from what to what, when
    assert "Corrections by operator: ana 2, bo 1" in text
    assert (f"<td>ana</td><td>2026-12-07 14:00</td><td>{ids[4]}</td><td>u2.jpg</td>"
            "<td>Class_I</td><td>Class_I</td><td>a bruise</td>") in text  # fmt: skip
    assert (f"<td>ana</td><td>2026-12-07 15:00</td><td>{ids[4]}</td><td>u2.jpg</td>"
            "<td>Class_I</td><td>Class_II</td>") in text  # fmt: skip
    assert (f"<td>bo</td><td>2026-12-07 13:00</td><td>{ids[0]}</td><td>a.jpg</td>"
            "<td>Class_I</td><td>Extra_Class</td>") in text  # fmt: skip
    assert f"<td>cnn-fast</td><td>{'ab' * 32}</td><td>3</td>" in text
    assert f"<td>cnn-slow</td><td>{'cd' * 32}</td><td>3</td>" in text
    # the photo left to check, pictured from where it is kept
    assert text.count("src='data:image/jpeg;base64,") == 1
    assert "<td>status</td><td>" + ("closed by carmen at " if closed else "open") in text
    digest = _digest_said(done.output)
    assert f"<code>{digest}</code>" in text
    assert digest == lot_records(store, "bin 7").digest
    plain = tmp_path / "plain.html"  # without --photos: no pictures, and it says how
    done = run("lots", "report", "bin 7", "--db", db_url, "--out", plain, "--timezone", "UTC")
    assert done.exit_code == 0, done.output
    text = plain.read_text(encoding="utf-8")
    assert "data:image" not in text and "Give --photos" in text
    assert "Times in UTC (UTC+00:00)." in text
    assert "<td>first grading</td><td>2026-12-07 09:00" in text


def test_the_certificate_csv_carries_a_digest_a_row_and_the_lot_digest_last(db_url, tmp_path):
    store, ids = _lot(db_url)
    table = tmp_path / "lot.csv"
    done = run("lots", "report", "bin 7", "--db", db_url, "--out", table,
               "--timezone", "Europe/Madrid")  # fmt: skip
    assert done.exit_code == 0, done.output
    rows = _csv(table)
    head = rows[0]
    assert head[:3] == ["id", "time (UTC)", "time (Europe/Madrid)"] and head[-1] == "row_sha256"
    assert [h for h in head if h.startswith("p_")] == [f"p_{g}" for g in GRADES]  # best first
    gradings = [r for r in rows[1:] if r[0].isdigit()]
    assert [int(r[0]) for r in gradings] == ids
    assert gradings[0][1:3] == ["2026-12-07 09:00:00", "2026-12-07 10:00:00"]
    assert gradings[0][head.index("final_grade")] == "Extra_Class"
    recorded = lot_records(store, "bin 7")
    assert [r[-1] for r in gradings] == [recorded.rows[f"grading {i}"] for i in ids]
    assert rows[-1][0] == "lot SHA-256" and rows[-1][-1] == _digest_said(done.output)
    assert rows[-1][-1] == recorded.digest
    assert grading_rows(recorded) == store.gradings("bin 7")  # the columns as before
    for lot, out in (("nope", tmp_path / "nope.csv"), ("nope", tmp_path / "nope.html")):
        assert_clean_failure(run("lots", "report", lot, "--db", db_url, "--out", out),
                             "No lot named 'nope'")  # fmt: skip
        assert not out.exists()


def test_the_same_records_hash_alike_on_sqlite_and_postgresql(db_url, tmp_path):
    here, _ = _lot(db_url)
    there, _ = _lot(f"sqlite:///{tmp_path / 'other.db'}")
    mine, theirs = lot_records(here, "bin 7"), lot_records(there, "bin 7")
    assert mine.rows == theirs.rows and mine.digest == theirs.digest
    assert lot_records(here, "bin 7").digest == mine.digest  # read again: the same


def test_each_rows_digest_is_of_the_documented_canonical_text(db_url):
    """Row digests as the digest module documents them (JSON, keys sorted at every level,
    no spaces, times as UTC ISO 8601), recomputed here from the rows alone: the fast
    encoding the records use must give the very same text, on both databases."""
    import json

    store, ids = _lot(db_url)
    records.close_lot(store, "bin 7", "carmen")
    found = lot_records(store, "bin 7")

    def text(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=lambda t: t.replace(tzinfo=t.tzinfo or timezone.utc)
                          .astimezone(timezone.utc).isoformat())  # fmt: skip

    def sha(value):
        return hashlib.sha256(text(value).encode("utf-8")).hexdigest()

    fruits = {f["id"]: f for f in found.fruits}
    for grading in found.gradings:
        whole = {"grading": grading, "fruit": fruits.get(grading["fruit_grading_id"]),
                 "corrections": [c for c in found.corrections
                                 if c["grading_id"] == grading["id"]]}  # fmt: skip
        assert found.rows[f"grading {grading['id']}"] == sha(whole)
    assert found.rows["lot"] == sha(found.lot) and found.rows["lot events"] == sha(found.events)
    assert list(found.gradings[0]["probabilities"]) == list(_p("Class_I"))  # as stored


def test_the_certificate_states_what_the_database_says(db_url):
    """The certificate's summary, to-check list and close are made from the rows it hashes;
    they must be what the database's own summary, to-check list and close say."""
    from mangograde.records import REJECT, to_check
    from mangograde.records.certified import closing_in, summary_of, to_check_in
    from mangograde.records.closing import closing_of, reopen_lot

    store, ids = _lot(db_url)
    correct(store, ids[2], REJECT, "ana")  # c.jpg: fruit f2's one photo, so f2 is a reject

    def same() -> None:
        rows = lot_records(store, "bin 7")
        assert summary_of(rows) == store.summary("bin 7", detail=True)
        assert to_check_in(rows) == to_check(store, "bin 7")
        assert closing_in(rows) == closing_of(store, "bin 7")

    same()
    summary = store.summary("bin 7", detail=True)
    assert summary.rejects == 1 and summary.fruit_rejects == 1 and summary.checks_left == 1
    records.close_lot(store, "bin 7", "carmen")
    same()
    reopen_lot(store, "bin 7", "dora", "one more crate")
    same()


# -- lots verify ----------------------------------------------------------------------------


def test_verify_says_a_lot_matches_and_names_the_rows_that_differ(db_url, tmp_path):
    from sqlalchemy import delete, update

    from mangograde.records.schema import Correction, Grading

    store, ids = _lot(db_url)
    table = tmp_path / "lot.csv"
    done = run("lots", "report", "bin 7", "--db", db_url, "--out", table)
    digest = _digest_said(done.output)
    same = run("lots", "verify", "bin 7", "--digest", digest.upper(), "--db", db_url,
               "--certificate", table)  # fmt: skip
    assert same.exit_code == 0 and "matches the certificate" in same.output, same.output
    correct(store, ids[1], "Class_II", "bo")  # a correction appended: grading changed
    store.record("bin 7", FAST, [_photo("e.jpg", "Class_I")])  # a grading added
    with store.engine.begin() as connection:  # rows edited and deleted behind the store
        connection.execute(update(Grading).where(Grading.id == ids[3]).values(grade="Class_I"))
        connection.execute(delete(Correction).where(Correction.grading_id == ids[0]))
        connection.execute(delete(Grading).where(Grading.id == ids[0]))
    alone = run("lots", "verify", "bin 7", "--digest", digest, "--db", db_url)
    assert alone.exit_code == 3, alone.output
    assert "does not match the certificate" in alone.output and "--certificate" in alone.output
    named = run("lots", "verify", "bin 7", "--digest", digest, "--db", db_url,
                "--certificate", table)  # fmt: skip
    assert named.exit_code == 3, named.output
    assert f"2 changed: grading {ids[1]}, grading {ids[3]}" in named.output
    assert f"1 added: grading {ids[-1] + 1}" in named.output
    assert f"1 removed: grading {ids[0]}" in named.output
    if _close(store, "bin 7"):  # a closing is a row of the lot too
        closed = run("lots", "verify", "bin 7", "--digest", digest, "--db", db_url,
                     "--certificate", table)  # fmt: skip
        assert closed.exit_code == 3 and "lot events" in closed.output, closed.output


def test_a_certificate_edited_or_of_another_digest_is_refused(db_url, tmp_path):
    _lot(db_url)
    table = tmp_path / "lot.csv"
    digest = _digest_said(run("lots", "report", "bin 7", "--db", db_url, "--out", table).output)
    other = "0" * 64
    assert_clean_failure(
        run("lots", "verify", "bin 7", "--digest", other, "--db", db_url, "--certificate", table),
        f"states the digest {digest}, not the --digest given",
    )
    rows = _csv(table)
    rows[1][-1] = "f" * 64  # one row's digest edited
    with (tmp_path / "edited.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    assert_clean_failure(
        run("lots", "verify", "bin 7", "--digest", digest, "--db", db_url,
            "--certificate", tmp_path / "edited.csv"),
        "do not add up to the lot digest",
    )  # fmt: skip
    (tmp_path / "labels.csv").write_text("image,grade\na.jpg,A\n", encoding="utf-8")
    assert_clean_failure(
        run("lots", "verify", "bin 7", "--digest", digest, "--db", db_url,
            "--certificate", tmp_path / "labels.csv"),
        "is not a lot certificate",
    )  # fmt: skip


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "a" * 63, "a" * 65, "sha256:" + "a" * 64])
def test_a_digest_that_is_not_64_hex_digits_is_one_clear_error(bad, tmp_path):
    missing = tmp_path / "none.db"  # refused before any database is opened
    done = run("lots", "verify", "bin 7", "--digest", bad, "--db", f"sqlite:///{missing}")
    assert_clean_failure(done, "is not a lot digest", "64 hexadecimal digits")
    assert not missing.exists()


# -- local time ------------------------------------------------------------------------------


def test_list_and_show_show_times_in_the_zone_asked_and_name_it(db_url):
    _lot(db_url)
    listed = run("lots", "list", "--db", db_url, "--timezone", "Europe/Madrid")
    assert listed.exit_code == 0, listed.output
    assert "Times in Europe/Madrid (UTC+01:00)." in listed.output
    assert "2026-12-07 10:00" in listed.output and "2026-12-07 12:00" in listed.output
    shown = run("lots", "show", "bin 7", "--db", db_url, "--timezone", "America/Lima")
    assert shown.exit_code == 0, shown.output
    assert "created 2026-12-07 04:00, the last at 2026-12-07 06:00" in shown.output
    assert "America/Lima (UTC-05:00)" in shown.output


def test_a_zone_that_does_not_exist_is_one_clear_error(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    for command in (["list"], ["show", "bin 7"]):
        done = run("lots", *command, "--db", missing, "--timezone", "Mars/Olympus_Mons")
        assert_clean_failure(done, "--timezone 'Mars/Olympus_Mons' is not a time zone",
                             "Europe/Madrid")  # fmt: skip
    page = tmp_path / "lot.html"
    done = run("lots", "report", "bin 7", "--db", missing, "--out", page,
               "--timezone", "Europe/Madird")  # fmt: skip
    assert_clean_failure(done, "did you mean Europe/Madrid")
    assert not page.exists() and not (tmp_path / "none.db").exists()


def test_before_and_since_read_a_zone_name(db_url, tmp_path):
    store = open_store(db_url)
    kept = tmp_path / "kept"
    sha = hashlib.sha256(write_photo(tmp_path / "a.jpg").read_bytes()).hexdigest()
    kept.mkdir()
    (tmp_path / "a.jpg").rename(kept / f"{sha}.jpg")
    # 2026-12-08T00:00 Europe/Madrid is 2026-12-07 23:00 UTC
    ids = store.record("early", FAST, [_photo("a.jpg", "Class_I", sha=sha)],
                       when=datetime(2026, 12, 7, 22, 30, tzinfo=timezone.utc))  # fmt: skip
    store.record("late", FAST, [_photo("b.jpg", "Class_I")],
                 when=datetime(2026, 12, 7, 23, 30, tzinfo=timezone.utc))  # fmt: skip
    pruned = run("lots", "prune", "--before", "2026-12-08T00:00 Europe/Madrid", "--dry-run",
                 "--db", db_url)  # fmt: skip
    assert pruned.exit_code == 0 and "Would delete 1 gradings" in pruned.output, pruned.output
    utc = run("lots", "prune", "--before", "2026-12-08T00:00", "--dry-run", "--db", db_url)
    assert "Would delete 2 gradings" in utc.output  # no zone: UTC, as before
    correct(store, ids[0], "Extra_Class", "ana",
            when=datetime(2026, 12, 7, 22, 45, tzinfo=timezone.utc))  # fmt: skip
    since = run("data", "labels", db_url, "--photos", kept, "--out", tmp_path / "l1",
                "--since", "2026-12-07T23:30 Europe/Madrid")  # 22:30 UTC: it is in  # fmt: skip
    assert since.exit_code == 0 and "Wrote 1 photos" in since.output, since.output
    later = run("data", "labels", db_url, "--photos", kept, "--out", tmp_path / "l2",
                "--since", "2026-12-08 Europe/Madrid")  # 23:00 UTC: it is not  # fmt: skip
    assert_clean_failure(later, "No corrected photos")
    bad = run("lots", "prune", "--before", "2026-12-08T00:00 Europe/Madird", "--db", db_url)
    assert_clean_failure(bad, "the zone 'Europe/Madird' is not a time zone")
    both = run("lots", "prune", "--before", "2026-12-08T00:00+01:00 Europe/Madrid", "--db", db_url)
    assert_clean_failure(both, "both an offset and a zone")
    assert sorted(store.lot_names()) == ["early", "late"]  # nothing deleted


def test_zone_names_follow_daylight_saving_time():
    assert parse_time("2026-07-08T00:00 Europe/Madrid", "--before") == datetime(
        2026, 7, 7, 22, tzinfo=timezone.utc
    )
    assert parse_time("2026-12-08 Europe/Madrid", "--before") == datetime(
        2026, 12, 7, 23, tzinfo=timezone.utc
    )
    zone = house_zone("Europe/Madrid")
    summer, winter = datetime(2026, 7, 1, tzinfo=timezone.utc), datetime(2026, 12, 1)
    assert zone.label([summer, winter]) == "Europe/Madrid (UTC+01:00, UTC+02:00)"
    with pytest.raises(SettingsError, match="is not a date"):
        parse_time("yesterday", "--since")


# -- how verify reads the records ------------------------------------------------------------


def test_the_records_read_for_a_digest_are_what_the_schemas_types_give(db_url):
    """The digest reads the driver's values and makes them by the types the database
    declares; they must be what SQLAlchemy's typed columns give (times, booleans, JSON)."""
    from sqlalchemy import select

    from mangograde.records.schema import Base, Correction, FruitGrading, Grading

    store, ids = _lot(db_url)
    correct(store, ids[0], "Class_II", "ana", note="bruise")
    records.close_lot(store, "bin 7", "carmen")
    found = lot_records(store, "bin 7")
    events = Base.metadata.tables["lot_events"]
    with store.engine.connect() as connection:

        def typed(table, order):
            rows = [dict(r._mapping) for r in connection.execute(select(table).order_by(order))]
            return [{k: v for k, v in row.items() if k != "lot_id"} for row in rows]

        assert found.gradings == typed(Grading.__table__, Grading.id)
        assert found.corrections == typed(Correction.__table__, Correction.id)
        assert found.fruits == typed(FruitGrading.__table__, FruitGrading.id)
        assert found.events == typed(events, events.c.id)
    assert isinstance(found.gradings[0]["time"], datetime)
    assert found.gradings[0]["check"] is False and isinstance(
        found.gradings[0]["probabilities"], dict
    )
    assert found.events and found.events[0]["kind"] == "closed"


def test_a_sqlite_file_is_verified_without_sqlalchemy_and_hashes_as_through_the_store(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'records.db'}"
    store, _ = _lot(url)
    records.close_lot(store, "bin 7", "carmen")
    expected = lot_records(store, "bin 7").digest
    code = ("import sys; from mangograde.records.digest import read_lot; "
            f"print(read_lot({url!r}, 'bin 7').digest, 'sqlalchemy' in sys.modules)")  # fmt: skip
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()  # fmt: skip
    assert said == [expected, "False"]


def test_the_command_line_starts_without_the_photo_and_model_libraries():
    """Every command pays the command line's imports: lots verify's second is mostly that.
    numpy, Pillow, SQLAlchemy and torch load in the commands that use them, not before;
    the lots commands never load the photo and model libraries."""
    import subprocess
    import sys

    heavy = "('numpy', 'PIL', 'scipy', 'torch')"
    for modules, more in (("mangograde.cli", ", 'sqlalchemy'"),
                          ("mangograde.records, mangograde.workflows.lots", "")):  # fmt: skip
        code = (f"import sys, {modules}; "
                f"print(sorted(m for m in {heavy[:-1]}{more}) if m in sys.modules))")  # fmt: skip
        said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        assert said == "[]", (modules, said)


def test_verify_of_a_database_not_as_expected_says_what_the_store_says(tmp_path):
    import sqlite3

    path = tmp_path / "records.db"
    url = f"sqlite:///{path}"
    _lot(url)
    digest = "0" * 64
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0002'")
    older = run("lots", "verify", "bin 7", "--digest", digest, "--db", url)
    assert_clean_failure(older, "Upgrade it first")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0003'")
        connection.execute("CREATE TABLE invoices (id INTEGER)")
    foreign = run("lots", "verify", "bin 7", "--digest", digest, "--db", url)
    assert_clean_failure(foreign, "holds tables mangograde did not make (invoices)")
    unknown = run(
        "lots", "verify", "bin 8", "--digest", digest, "--db", f"sqlite:///{tmp_path / 'x.db'}"
    )
    assert_clean_failure(unknown, "No records database at")


def test_the_tables_known_without_the_orm_are_the_schemas():
    from mangograde.records.schema import Base
    from mangograde.records.store import TABLES

    assert set(TABLES) == set(Base.metadata.tables)
