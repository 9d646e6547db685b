"""Hostile inputs, fourth round (issue 39): the records and the commands around them
(lots, data labels, adapt, predict --record). Each test fails without its fix; those that
touch the database run on SQLite and on a real PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import hashlib
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde.basics.csvcells import read_cell, text_cell  # noqa: E402
from mangograde.basics.errors import OutputError, SettingsError  # noqa: E402
from mangograde.records import (  # noqa: E402
    ModelIdentity,
    PhotoRecord,
    RecordsError,
    correct,
    open_store,
)

from .helpers import write_photo  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402

MODEL = ModelIdentity("colour", "ef" * 32)
PROBABILITIES = {"A": 0.7, "B": 0.2, "C": 0.1}


def _photo(name: str, fruit: str | None = None) -> PhotoRecord:
    data = name.encode()
    return PhotoRecord(name, hashlib.sha256(data).hexdigest(), len(data), "A", PROBABILITIES,
                       fruit=fruit)  # fmt: skip


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _new_photos(root: Path, folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True)
    for source in sorted((root / "train").glob("*.jpg"))[:n]:
        shutil.copy(source, folder / source.name)
    return folder


# -- point 1: prune says what it deletes, in the house's time, before deleting ---------------


@pytest.fixture
def house_at_plus_14(monkeypatch):
    """This machine's zone at UTC+14 (a POSIX zone: no tz database needed)."""
    monkeypatch.setenv("TZ", "LINT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_prune_says_what_it_deletes_in_the_house_time_before_deleting(db_url, house_at_plus_14):
    store = open_store(db_url)
    store.record(
        "early", MODEL, [_photo("a.jpg")], when=datetime(2026, 12, 7, 9, tzinfo=timezone.utc)
    )
    store.record(
        "late", MODEL, [_photo("b.jpg")], when=datetime(2026, 12, 7, 11, tzinfo=timezone.utc)
    )
    counts = "1 gradings, 0 corrections, 0 fruits and 1 empty lots"
    when = "2026-12-08 00:00 +14:00 (2026-12-07 10:00 UTC)"
    dry = run("lots", "prune", "--before", "2026-12-08T00:00+14:00", "--dry-run", "--db", db_url)
    assert dry.exit_code == 0, dry.output
    assert f"Would delete {counts} graded before {when}." in dry.output, dry.output
    assert sorted(store.lot_names()) == ["early", "late"]
    done = run("lots", "prune", "--before", "2026-12-07T10:00", "--db", db_url)  # naive: UTC
    assert done.exit_code == 0, done.output
    announced = done.output.index(f"Deleting {counts} graded before {when}...")
    assert done.output.index(f"Deleted {counts}.") > announced
    assert store.lot_names() == ["late"]
    again = run("lots", "prune", "--before", "2026-12-07T10:00", "--db", db_url)
    assert (
        again.exit_code == 0 and f"Nothing graded before {when}: nothing deleted." in again.output
    )
    helped = run("lots", "prune", "--help").output + run("data", "labels", "--help").output
    words = " ".join(helped.replace("│", " ").split())
    assert words.count("is UTC; an offset given is honoured") == 2, words


# -- point 4: adapt never writes inside what it reads ---------------------------------------


def test_adapt_refuses_an_out_inside_its_photos_or_its_parent_before_any_work(colour_run, tmp_path):
    from mangograde.data import Dataset
    from mangograde.workflows.adapt import NewPhotos, adapt_run

    root, parent = colour_run
    rows = (root / "train.csv").read_text().splitlines()[1:]
    picked = [r for g in [",A", ",B", ",C"] for r in [r for r in rows if r.endswith(g)][:2]]
    new = tmp_path / "new"
    new.mkdir()
    for row in picked:
        shutil.copy(root / "train" / row.split(",")[0], new)
    labels = tmp_path / "new.csv"  # labels that adapt reads as they are
    labels.write_text("image_id,label\n" + "\n".join(picked) + "\n")
    before, photos_before = tree(parent), tree(new)
    cases = (
        (new / "adapted", [], f"is inside {new}"),
        (parent / "adapted", [], "inside the run folder"),
        (parent, ["--overwrite"], "is the run folder"),
        (root / "train" / "adapted", [], f"is inside {root / 'train'}"),  # the parent's photos
    )
    for out, extra, named in cases:
        refused = run("adapt", parent, new, "--labels", labels, "--out", out, *extra, "--quiet")
        assert_clean_failure(refused, named)
        assert "Warning" not in refused.output  # refused before the photos were even read
        assert not (out / "config.yaml").exists() or out == parent
    dataset = Dataset(new, "photos", (), (), ())
    few = NewPhotos(dataset, np.zeros((0, 48, 48, 3), np.uint8), None, None)
    with pytest.raises(OutputError, match="is the run folder"):
        adapt_run(parent, few, parent, overwrite=True)
    assert tree(parent) == before and tree(new) == photos_before
    assert not (new / "adapted").exists() and not (parent / "adapted").exists()


# -- point 5: names that look like formulas are text in every CSV, and read back exactly -----


def _corrected(url: str, tmp_path: Path, lot: str, fruits: list[str], operator: str) -> Path:
    """Four kept photos graded A in ``lot`` (fruits two by two), corrected to B, B, C, C
    by ``operator``; the folder of kept photos (as serve's --keep-photos)."""
    store = open_store(url)
    kept = tmp_path / "kept"
    kept.mkdir()
    photos = []
    for i in range(4):
        data = write_photo(tmp_path / "sources" / f"p{i}.jpg", seed=i).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        (kept / f"{sha}.jpg").write_bytes(data)
        photos.append(PhotoRecord(f"=p{i}.jpg", sha, len(data), "A", PROBABILITIES,
                                  familiarity=-0.5, fruit=fruits[i // 2]))  # fmt: skip
    ids = store.record(lot, MODEL, photos)
    for grading, grade in zip(ids, "BBCC", strict=True):
        correct(store, grading, grade, operator)
    return kept


def _raw_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _no_formula(rows: list[list[str]]) -> None:
    for cell in (c for row in rows for c in row):
        try:
            float(cell)  # a number we wrote (-0.5) is a number
        except ValueError:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_names_that_look_like_formulas_are_written_as_text_and_read_back_exactly(db_url, tmp_path):
    from mangograde.data import load_dataset

    lot, fruits, operator = "-lot 7", ["@SUM(1+1)", "=2+3"], "=2+3"
    kept = _corrected(db_url, tmp_path, lot, fruits, operator)
    report = tmp_path / "lot.csv"
    reported = run("lots", "report", "--db", db_url, "--out", report, "--", lot)
    assert reported.exit_code == 0, reported.output
    rows = _raw_csv(report)
    head = rows[0]
    _no_formula(rows)
    graded = [r for r in rows[1:] if r[0].isdigit()]  # the lot's digests follow
    assert [r[head.index("fruit")] for r in graded] == ["'@SUM(1+1)"] * 2 + ["'=2+3"] * 2
    assert {r[head.index("corrected_by")] for r in graded} == {"'=2+3"}
    assert {r[head.index("photo")] for r in graded} == {f"'=p{i}.jpg" for i in range(4)}
    assert {r[head.index("familiarity")] for r in graded} == {"-0.5"}  # a number stays one
    out = tmp_path / "labels"
    done = run("data", "labels", db_url, "--photos", kept, "--out", out)
    assert done.exit_code == 0, done.output
    for name in ("labels.csv", "groups.csv", "corrections.csv"):
        _no_formula(_raw_csv(out / name))
    corrections = _raw_csv(out / "corrections.csv")
    head = corrections[0]
    assert {r[head.index("operator")] for r in corrections[1:]} == {"'=2+3"}
    assert {r[head.index("lot")] for r in corrections[1:]} == {"'-lot 7"}
    assert {r[head.index("fruit")] for r in corrections[1:]} == {"'@SUM(1+1)", "'=2+3"}
    # train and predict read them back exactly: groups are LOT/FRUIT
    dataset = load_dataset(out / "images", out / "labels.csv", out / "groups.csv", ("A", "B", "C"))
    assert sorted(set(dataset.groups or ())) == sorted(f"{lot}/{f}" for f in fruits)
    assert sorted(dataset.labels.tolist()) == [1, 1, 2, 2]


def test_the_text_quote_is_taken_off_only_where_it_was_put_on():
    for name in ("=2+3", "@SUM(1+1)", "+x", "-x", "\tx", "'=x", "''+y", "'plain", "plain", "'"):
        assert read_cell(text_cell(name)) == name
    assert text_cell("=2+3") == "'=2+3" and text_cell("'=x") == "''=x"
    assert text_cell(-0.5) == -0.5 and text_cell(3) == 3 and text_cell("a=b") == "a=b"


# -- point 6: data labels never writes inside an input folder -------------------------------


def test_data_labels_refuses_an_out_inside_its_photos_or_a_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'records.db'}"
    kept = _corrected(url, tmp_path, "L", ["f1", "f2"], "ana")
    before = tree(kept)
    fake_run = tmp_path / "run"
    fake_run.mkdir()
    (fake_run / ".mangograde-run").write_text('{"format": "mangograde-run"}')
    export = tmp_path / "export"
    export.mkdir()
    (export / "grader.json").write_text("{}")
    cases = (
        (kept / "labels", f"is inside {kept}"),
        (kept, f"is inside {kept}"),
        (fake_run / "labels", f"is inside {fake_run}, a run"),
        (export / "x" / "labels", f"is inside {export}, a run (or export) folder"),
    )
    for out, named in cases:
        refused = run("data", "labels", url, "--photos", kept, "--out", out)
        assert_clean_failure(refused, named, "Write")
        assert not (out / "labels.csv").exists()
    assert tree(kept) == before and sorted(p.name for p in fake_run.iterdir()) == [
        ".mangograde-run"
    ]
    from mangograde.records import labelled
    from mangograde.workflows.labels import write_labels

    with pytest.raises(OutputError, match="a folder of photos this command reads"):
        write_labels(labelled(open_store(url)), kept, kept / "labels")
    # another folder of photos: a later predict there would grade the copies too
    orchard = tmp_path / "orchard"
    orchard.mkdir()
    (orchard / "m1.jpg").write_bytes((next(kept.iterdir())).read_bytes())
    refused = run("data", "labels", url, "--photos", kept, "--out", orchard / "labels")
    assert_clean_failure(refused, f"is inside {orchard}, a folder of photos", "holds no photos")
    assert sorted(p.name for p in orchard.iterdir()) == ["m1.jpg"]


# -- point 8: another application's database is refused, nothing written, no WAL ------------


@pytest.mark.parametrize("table", ["lots", "invoices"])
def test_another_applications_database_is_refused_and_left_as_it_was(
    colour_run, db_url, table, tmp_path
):
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, owner TEXT)"))
        connection.execute(text(f"INSERT INTO {table} (id, owner) VALUES (1, 'them')"))
    engine.dispose()
    with pytest.raises(RecordsError, match=f"did not make \\({table}\\)"):
        open_store(db_url)
    root, colour = colour_run
    photos = _new_photos(root, tmp_path / "photos", 2)
    said = ("did not make", "an empty database", "mangograde db upgrade")
    assert_clean_failure(run("predict", colour, photos, "--record", db_url, "--lot", "L",
                             "--out", tmp_path / "p.csv"), *said)  # fmt: skip
    assert not (tmp_path / "p.csv").exists()
    assert_clean_failure(run("db", "upgrade", db_url), *said)
    assert_clean_failure(run("lots", "list", "--db", db_url), *said)
    assert _tables(db_url) == {table}  # no alembic_version, no table of ours
    if db_url.startswith("sqlite"):
        import sqlite3

        path = db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert connection.execute(f"SELECT owner FROM {table}").fetchall() == [("them",)]


# -- point 9: a file that is not a database is one message ---------------------------------


def test_a_file_that_is_not_a_database_is_named_by_every_command(colour_run, tmp_path):
    root, colour = colour_run
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    before = junk.read_bytes()
    url = f"sqlite:///{junk}"
    photos = _new_photos(root, tmp_path / "photos", 2)
    said = (f"{junk} is not an SQLite database", "Give the --db")
    assert_clean_failure(run("predict", colour, photos, "--record", url, "--lot", "L",
                             "--out", tmp_path / "p.csv"), *said)  # fmt: skip
    assert_clean_failure(run("lots", "list", "--db", url), *said)
    assert_clean_failure(run("db", "upgrade", url), *said)
    assert_clean_failure(run("lots", "prune", "--before", "2026-01-01", "--db", url), *said)
    with pytest.raises(RecordsError, match="not an SQLite database"):
        open_store(url)
    assert junk.read_bytes() == before and not (tmp_path / "p.csv").exists()


# -- point 16: C1 controls, bidi overrides and separators are refused in names ---------------

HIDDEN = ["\x85", "\x9b", "\x80", "\x9f", "\u202a", "\u202e", "\u2066", "\u2069", "\u2028",
          "\u2029"]  # fmt: skip


def test_names_with_c1_controls_bidi_overrides_or_separators_are_refused(db_url):
    from sqlalchemy import insert

    from mangograde.records.schema import Lot

    store = open_store(db_url)
    (grading,) = store.record("ok", MODEL, [_photo("a.jpg")])
    for c in HIDDEN:
        for lot in (f"lot{c}x", f"lot{c}"):  # trailing too: refused, not stripped away
            with pytest.raises(SettingsError, match=f"control characters \\(U\\+{ord(c):04X}"):
                store.record(lot, MODEL, [_photo("b.jpg")])
        with pytest.raises(SettingsError, match="fruit name .* control characters"):
            store.record("ok", MODEL, [_photo("c.jpg", fruit=f"f{c}1")])
        with pytest.raises(SettingsError, match="operator name .* control characters"):
            correct(store, grading, "B", f"ana{c}")
    assert store.lot_names() == ["ok"] and store.summary("ok").gradings == 1
    assert store.summary("ok").corrections == 0
    with store.engine.begin() as connection:  # a name kept before the refusal
        connection.execute(insert(Lot).values(name="x\u202ey", created=datetime.now(timezone.utc)))
    listed = run("lots", "list", "--db", db_url)
    assert listed.exit_code == 0 and "x\\u202ey" in listed.output
    assert "\u202e" not in listed.output
    shown = run("lots", "show", "x\u202ey", "--db", db_url)
    assert shown.exit_code == 0 and "Lot x\\u202ey:" in shown.output
