"""The operator's corrections: appended to the records, the lot's queue of photos to check,
and the API that serves both (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde.basics.errors import SettingsError  # noqa: E402
from mangograde.records import (  # noqa: E402
    ModelIdentity,
    NoSuchRecord,
    PhotoRecord,
    correct,
    history,
    labelled,
    open_store,
    to_check,
)

MODEL = ModelIdentity("colour", "cd" * 32)


def _photo(name: str, grade: str, top: float, reason: str | None = None) -> PhotoRecord:
    rest = (1 - top) / 2
    probabilities = {"A": rest, "B": rest, "C": rest} | {grade: top}
    return PhotoRecord(name, hashlib.sha256(name.encode()).hexdigest(), 10, grade, probabilities,
                       check=reason is not None, reason=reason)  # fmt: skip


def test_corrections_are_appended_and_the_latest_stands(db_url):
    store = open_store(db_url)
    ids = store.record(
        "L1", MODEL, [_photo("a.jpg", "A", 0.5, "unsure"), _photo("b.jpg", "B", 0.9)]
    )
    first = correct(store, ids[0], "C", "ana", note="bruised")
    assert (first.grade, first.previous, first.operator) == ("C", "A", "ana")
    undo = correct(store, ids[0], "A", "ben")  # an undo is a new correction
    assert undo.previous == "C" and undo.id > first.id
    assert [(c.grade, c.previous, c.operator) for c in history(store, ids[0])] == [
        ("C", "A", "ana"), ("A", "C", "ben")]  # fmt: skip
    assert store.summary("L1").mix == {"A": 1, "B": 1} and store.summary("L1").corrections == 2
    with pytest.raises(SettingsError, match="'Extra' is not a grade of the run .* A, B, C"):
        correct(store, ids[0], "Extra", "ana")
    with pytest.raises(NoSuchRecord, match="No grading 999"):
        correct(store, 999, "A", "ana")
    with pytest.raises(SettingsError, match="note of 100,000 characters"):
        correct(store, ids[0], "B", "ana", note="x" * 100_000)
    with pytest.raises(SettingsError, match="empty operator name"):
        correct(store, ids[0], "B", "  ")
    assert len(history(store, ids[0])) == 2  # nothing refused was kept


def test_two_tabs_correcting_at_once_are_both_kept_in_order(db_url):
    store = open_store(db_url)
    (grading,) = store.record("L2", MODEL, [_photo("a.jpg", "A", 0.5, "unsure")])
    found, errors = [], []

    def tab(grade: str) -> None:
        try:
            for _ in range(5):
                found.append(correct(store, grading, grade, f"tab-{grade}"))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    tabs = [threading.Thread(target=tab, args=(g,)) for g in "BC"]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join()
    assert not errors
    kept = history(store, grading)
    assert len(kept) == 10 and [c.id for c in kept] == sorted(c.id for c in found)
    assert all(
        later.previous == earlier.grade for earlier, later in zip(kept[:-1], kept[1:], strict=True)
    )


def test_the_queue_puts_unfamiliar_first_then_the_least_sure(db_url):
    store = open_store(db_url)
    ids = store.record("L3", MODEL, [
        _photo("sure.jpg", "A", 0.95), _photo("unsure-60.jpg", "B", 0.6, "unsure"),
        _photo("unsure-40.jpg", "C", 0.4, "unsure"), _photo("odd.jpg", "A", 0.9, "unfamiliar"),
    ])  # fmt: skip
    queue = to_check(store, "L3")
    assert [r["photo"] for r in queue] == ["odd.jpg", "unsure-40.jpg", "unsure-60.jpg"]
    correct(store, ids[2], "C", "ana")  # confirmed: off the queue, unless asked for
    assert [r["photo"] for r in to_check(store, "L3")] == ["odd.jpg", "unsure-60.jpg"]
    everything = to_check(store, "L3", include_corrected=True)
    assert everything[1]["corrected_grade"] == "C" and everything[1]["corrected_by"] == "ana"
    with pytest.raises(NoSuchRecord, match="No lot named 'nope'"):
        to_check(store, "nope")


def test_labelled_photos_are_the_corrected_ones_once_each(db_url):
    store = open_store(db_url)
    a, b, c = store.record("L4", MODEL, [_photo(n, "A", 0.5, "unsure") for n in "abc"])
    (again,) = store.record("L5", MODEL, [_photo("a", "A", 0.5, "unsure")])  # same bytes
    correct(store, a, "B", "ana")
    correct(store, b, "A", "ana")  # looked at, left as graded
    correct(store, again, "C", "ben")  # the latest correction of those bytes stands
    found = labelled(store)
    assert [(r["photo"], r["grade"], r["lot"]) for r in found] == [("a", "C", "L5")]
    confirmed = labelled(store, confirmed=True)
    assert [(r["photo"], r["grade"]) for r in confirmed] == [("b", "A"), ("a", "C")]
    in_l4 = labelled(store, lots=["L4"])  # that lot's own correction of those bytes
    assert [(r["photo"], r["grade"]) for r in in_l4] == [("a", "B")]
    assert len(labelled(store, lots=["L4"], confirmed=True)) == 2
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert labelled(store, since=later, confirmed=True) == []
    with pytest.raises(NoSuchRecord, match="No lot named 'L9'"):
        labelled(store, lots=["L9"])
    assert c  # never corrected: in no export


# -- through the service ----------------------------------------------------------------


def _upload(root, names):
    return [("files", (n, (root / "train" / n).read_bytes(), "image/jpeg")) for n in names]


def test_the_service_records_corrections_and_serves_the_queue_behind_its_key(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    url = f"sqlite:///{tmp_path / 'r.db'}"
    keys = {"ana": "key-of-ana", "ben": "key-of-ben"}
    options = ServeOptions(run=colour, db=url, keep_photos=tmp_path / "kept", api_keys=keys)
    names = ["mango_00000.jpg", "mango_00001.jpg", "mango_00002.jpg"]
    with TestClient(create_app(options)) as client:
        ana = {"X-API-Key": "key-of-ana"}
        files = [*_upload(root, names), ("files", ("noise.png", _noise_png(), "image/png"))]
        body = client.post("/v1/grade", files=files, data={"lot": "L"}, headers=ana).json()
        ids = [r["grading_id"] for r in body["results"]]
        grades = client.get("/v1/model", headers=ana).json()["grades"]
        path = f"/v1/gradings/{ids[0]}/corrections"
        assert client.post(path, json={"grade": grades[2]}).status_code == 401
        answer = client.post(path, json={"grade": grades[2]}, headers=ana)
        assert answer.status_code == 201, answer.text
        assert answer.json()["operator"] == "ana" and answer.json()["grade"] == grades[2]
        ben = {"X-API-Key": "key-of-ben"}
        spoofed = client.post(path, json={"grade": grades[0], "operator": "Carla"}, headers=ben)
        assert spoofed.status_code == 403 and "ben's" in spoofed.json()["detail"]
        typed = client.post(path, json={"grade": grades[0], "operator": "ben", "note": "ok"},
                            headers=ben).json()  # fmt: skip
        assert typed["operator"] == "ben" and typed["previous"] == grades[2]
        refused = {
            "not a grade": client.post(path, json={"grade": "Z"}, headers=ana),
            "no grading": client.post("/v1/gradings/9999/corrections", json={"grade": grades[0]},
                                      headers=ana),
            "long note": client.post(path, json={"grade": grades[0], "note": "n" * 100_000},
                                     headers=ana),
        }  # fmt: skip
        assert [r.status_code for r in refused.values()] == [422, 404, 422]
        assert "'Z' is not a grade" in refused["not a grade"].json()["detail"]
        assert "at most 10,000" in refused["long note"].json()["detail"]
        queue = client.get("/v1/lots/L/to-check?corrected=true", headers=ana).json()
        checked = [r for r in body["results"] if r.get("check")]
        first = {"not-a-fruit": 0, "unfamiliar": 1}  # then the least sure
        checked.sort(key=lambda r: (first.get(r["reason"], 2), max(r["probabilities"].values())))
        assert (
            checked[0]["image_id"] == "noise.png" and queue["items"][0]["reason"] == "not-a-fruit"
        )
        assert [i["grading_id"] for i in queue["items"]] == [r["grading_id"] for r in checked]
        photo = client.get(f"/v1/photos/{_sha(root, names[0])}", headers=ana)
        assert (
            photo.status_code == 200 and photo.content == (root / "train" / names[0]).read_bytes()
        )
        assert client.get("/v1/photos/" + "0" * 64, headers=ana).status_code == 404
        assert client.get("/v1/photos/../../etc", headers=ana).status_code in (404, 422)
        assert client.get("/v1/lots/nope/to-check", headers=ana).status_code == 404
        schema = client.get("/openapi.json").json()["paths"]
        assert "/v1/gradings/{grading_id}/corrections" in schema
        assert "/v1/lots/{lot}/to-check" in schema
        assert "mangograde_corrections_total 2.0" in client.get("/metrics").text
    rows = open_store(url).gradings("L")
    assert rows[0]["final_grade"] == grades[0] and rows[0]["corrected_by"] == "ben"


def _noise_png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _sha(root, name):
    return hashlib.sha256((root / "train" / name).read_bytes()).hexdigest()


def test_without_keys_a_correction_names_its_operator(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    with TestClient(
        create_app(ServeOptions(run=colour, db=f"sqlite:///{tmp_path / 'r.db'}"))
    ) as client:
        (result,) = client.post("/v1/grade", files=_upload(root, ["mango_00003.jpg"])).json()[
            "results"
        ]
        path = f"/v1/gradings/{result['grading_id']}/corrections"
        nameless = client.post(path, json={"grade": result["grade"]})
        assert nameless.status_code == 422 and "operator name" in nameless.json()["detail"]
        assert (
            client.post(path, json={"grade": result["grade"], "operator": "ana"}).status_code == 201
        )
        assert client.get("/v1/photos/" + "0" * 64).status_code == 404  # no --keep-photos
    with TestClient(create_app(ServeOptions(run=colour))) as client:  # --no-record
        nothing = client.post("/v1/gradings/1/corrections", json={"grade": "A", "operator": "x"})
        assert nothing.status_code == 404 and "--no-record" in nothing.json()["detail"]


def test_a_key_file_names_its_operators(tmp_path):
    from mangograde.service.app import read_api_keys

    one = tmp_path / "one"
    one.write_text("  s3cret \n")
    assert read_api_keys(one) == {"api-key": "s3cret"}
    named = tmp_path / "named"
    named.write_text("# operators\nana key-a\n\nben key-b\n")
    assert read_api_keys(named) == {"ana": "key-a", "ben": "key-b"}
    refused = [("ana a b\n", "line 1: expected KEY or NAME KEY"),
               ("ana k1\nana k2\n", "line 2: the name 'ana'"), ("# none\n", "empty")]  # fmt: skip
    for text, message in refused:
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(SettingsError, match=message):
            read_api_keys(bad)


# -- data labels: the corrections as the next run's labels ------------------------------


def test_data_labels_writes_the_corrected_photos_ready_to_train(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    import csv
    import json

    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    from .test_cli import assert_clean_failure, run

    root, colour = colour_run
    url, kept = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "kept"
    names = [f"mango_0000{i}.jpg" for i in range(6)]
    with TestClient(create_app(ServeOptions(run=colour, db=url, keep_photos=kept))) as client:
        body = client.post("/v1/grade", files=_upload(root, names), data={"lot": "L",
                           "fruit": ["f1", "f1", "f2", "f2", "f3", "f3"]}).json()  # fmt: skip
        results = body["results"]
        grades = client.get("/v1/model").json()["grades"]
        assert len(list(kept.iterdir())) == 6
        empty = run("data", "labels", url, "--photos", kept, "--out", tmp_path / "none")
        assert_clean_failure(empty, "No corrected photos", "--confirmed")
        other = {r["image_id"]: next(g for g in grades if g != r["grade"]) for r in results}
        for r in results[:4]:  # two fruits corrected, photo by photo
            client.post(f"/v1/gradings/{r['grading_id']}/corrections",
                        json={"grade": other[r["image_id"]], "operator": "ana"})  # fmt: skip
        client.post(
            f"/v1/gradings/{results[4]['grading_id']}/corrections",
            json={"grade": results[4]["grade"], "operator": "ana"},
        )  # confirmed
    gone = next(kept.glob(f"{_sha(root, names[3])}.*"))
    gone.unlink()  # the size limit removed it
    out = tmp_path / "labels"
    done = run("data", "labels", url, "--photos", kept, "--out", out, "--lot", "L")
    assert done.exit_code == 0, done.output
    assert "1 corrected photos are no longer kept" in done.output and names[3] in done.output
    labels = list(csv.DictReader((out / "labels.csv").open(encoding="utf-8")))
    by_photo = {row["image_id"].split("-", 1)[1]: row["label"] for row in labels}
    assert by_photo == {n: other[n] for n in names[:3]}  # corrected ones only, as corrected
    groups = {r["image"]: r["group"] for r in csv.DictReader((out / "groups.csv").open())}
    assert sorted(set(groups.values())) == ["L/f1", "L/f2"]
    assert (out / "missing.csv").read_text().count(names[3]) == 1
    assert run("data", "labels", url, "--photos", kept, "--out", out).exit_code == 1  # never over
    studio = tmp_path / "studio"
    done = run("data", "labels", url, "--photos", kept, "--out", studio, "--confirmed",
               "--format", "label-studio")  # fmt: skip
    assert done.exit_code == 0, done.output
    tasks = json.loads((studio / "tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == 4  # three corrected, one confirmed (the fourth's photo is gone)
    choice = tasks[0]["annotations"][0]["result"][0]
    assert choice["from_name"] == "grade" and choice["value"]["choices"] == [other[names[0]]]
    assert (studio / "images" / tasks[0]["data"]["image"].rsplit("/", 1)[1]).is_file()
    assert 'toName="image"' in (studio / "label_config.xml").read_text()
    assert_clean_failure(run("data", "labels", url, "--photos", kept, "--out", tmp_path / "x",
                             "--lot", "nope"), "No lot named 'nope'")  # fmt: skip
