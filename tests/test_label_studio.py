"""Label Studio there and back (issue 38.5): its JSON, JSON_MIN and CSV exports, written
here by hand from its documented format, read by every command that takes --labels, and
`data corrections` bringing its grades back into the records, once."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mangograde.basics.errors import DatasetError
from mangograde.data import load_dataset

from .helpers import write_photo
from .test_cli import assert_clean_failure, run

LOCAL = "/data/local-files/?d=labels/images/{}"
UPLOAD = "/data/upload/3/{:08x}-{}"
# Label Studio's work comes after the records' own corrections (made now) in these tests
BASE = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
ANA = {"id": 1, "email": "ana@packhouse.example", "first_name": "Ana", "last_name": ""}
BEN = 2  # Label Studio 1.23 exports completed_by as the user's id


def _at(minute: int) -> str:
    return (BASE + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _annotation(aid: int, grade: str, who, minute: int, cancelled: bool = False) -> dict:
    return {
        "id": aid, "completed_by": who, "was_cancelled": cancelled, "ground_truth": False,
        "result": [] if cancelled else [{
            "id": f"r{aid}", "type": "choices", "value": {"choices": [grade]},
            "origin": "manual", "to_name": "image", "from_name": "grade"}],
        "created_at": _at(minute), "updated_at": _at(minute), "lead_time": 4.2,
        "prediction": {}, "result_count": 0, "task": None, "project": 3,
    }  # fmt: skip


def _task(tid: int, url: str, *annotations: dict, **data) -> dict:
    for a in annotations:
        a["task"] = tid
    return {"id": tid, "data": {"image": url, **data}, "annotations": list(annotations),
            "drafts": [], "predictions": [], "meta": {}, "project": 3, "inner_id": tid,
            "created_at": _at(0), "updated_at": _at(0),
            "total_annotations": len(annotations), "cancelled_annotations": 0}  # fmt: skip


def _tasks() -> list[dict]:
    """Six photos a1..c2: b1 by two annotators who agree (an upload's URL), b2 by two who
    do not (ben later), c1 with a cancelled annotation beside ana's, c2 not annotated."""
    return [
        _task(1, LOCAL.format("a1.jpg"), _annotation(11, "A", ANA, 1)),
        _task(2, LOCAL.format("a2.jpg"), _annotation(12, "A", ANA, 2)),
        _task(3, UPLOAD.format(0x1A2B3C4D, "b1.jpg"), _annotation(13, "B", ANA, 3),
              _annotation(14, "B", BEN, 4)),
        _task(4, LOCAL.format("b2.jpg"), _annotation(15, "B", ANA, 5),
              _annotation(16, "C", BEN, 9)),
        _task(5, LOCAL.format("c1.jpg"), _annotation(17, "C", ANA, 6),
              _annotation(18, "A", BEN, 7, cancelled=True)),
        _task(6, LOCAL.format("c2.jpg")),
    ]  # fmt: skip


def _flat(tasks: list[dict]) -> list[dict]:
    """JSON_MIN: one object an annotation (a task without one: its data and id only)."""
    rows = []
    for t in tasks:
        live = [a for a in t["annotations"] if not a["was_cancelled"]]
        for a in live or [None]:
            row = {**t["data"], "id": t["id"]}
            if a is not None:
                who = a["completed_by"]
                row |= {"grade": a["result"][0]["value"]["choices"][0],
                        "annotator": who["email"] if isinstance(who, dict) else who,
                        "annotation_id": a["id"], "created_at": a["created_at"],
                        "updated_at": a["updated_at"], "lead_time": a["lead_time"]}  # fmt: skip
            rows.append(row)
    return rows


def write_export(path: Path, tasks: list[dict], fmt: str) -> Path:
    if fmt == "JSON":
        path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    elif fmt == "JSON_MIN":
        path.write_text(json.dumps(_flat(tasks), indent=1), encoding="utf-8")
    else:
        rows = _flat(tasks)
        extra = [k for r in rows for k in r if k not in ("image", "id", "grade")]
        columns = ["image", "id", "grade", *dict.fromkeys(extra)]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)
    return path


EXT = {"JSON": "json", "JSON_MIN": "json", "CSV": "csv"}


@pytest.mark.parametrize("fmt", ["JSON", "JSON_MIN", "CSV"])
def test_each_export_format_loads_as_labels_latest_by_default(photo_folder, tmp_path, fmt):
    export = write_export(tmp_path / f"export.{EXT[fmt]}", _tasks(), fmt)
    ds = load_dataset(photo_folder, labels=export)
    assert ds.image_ids == ("a1.jpg", "a2.jpg", "b1.jpg", "b2.jpg", "c1.jpg")
    assert list(ds.labels) == [0, 0, 1, 2, 2]  # b2: ben's C, the later one
    said = " ".join(ds.notices)
    assert "1 task of export" in said and "task 6 (c2.jpg)" in said and "left out" in said
    if fmt == "JSON":  # the flat formats leave cancelled annotations out themselves
        assert "1 cancelled annotation" in said and "task 5 (c1.jpg) annotation 18" in said
    assert "no task in" in said and "c2.jpg" in said  # the photo with no grade is named too


@pytest.mark.parametrize("fmt", ["JSON", "JSON_MIN", "CSV"])
def test_majority_takes_the_most_chosen_and_names_a_tie(photo_folder, tmp_path, fmt):
    tasks = _tasks()
    tasks[3]["annotations"].append(_annotation(19, "B", 3, 8))  # b2: B twice, C once
    export = write_export(tmp_path / f"e.{EXT[fmt]}", tasks, fmt)
    assert list(load_dataset(photo_folder, labels=export, annotations="majority").labels) == [
        0, 0, 1, 1, 2]  # fmt: skip
    tied = write_export(tmp_path / f"tied.{EXT[fmt]}", _tasks(), fmt)
    with pytest.raises(DatasetError) as info:
        load_dataset(photo_folder, labels=tied, annotations="majority")
    message = str(info.value)
    assert "task 4 (b2.jpg)" in message and "no majority" in message
    assert "B (ana@packhouse.example)" in message and "C (" in message
    assert "--annotations latest" in message


def test_image_urls_name_the_photo_local_files_uploads_and_plain_urls():
    from mangograde.data.label_studio import photo_name

    assert photo_name("/data/local-files/?d=labels/images/000039-90010.jpg") == "000039-90010.jpg"
    assert photo_name("http://box:8080/data/local-files/?d=my%20labels/images/x.jpg") == "x.jpg"
    assert photo_name("/data/upload/3/1a2b3c4d-000039-90010.jpg") == "000039-90010.jpg"
    assert photo_name("/data/upload/3/plain.jpg") == "plain.jpg"
    assert photo_name("https://example.com/photos/1a2b3c4d-x.jpg") == "1a2b3c4d-x.jpg"
    assert photo_name("s3://bucket/line-2/m%C3%A1ngo.jpg") == "mángo.jpg"


def test_files_that_are_not_label_studio_exports_say_what_they_look_like(photo_folder, tmp_path):
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DatasetError, match="looks like a COCO file.*expected Label Studio"):
        load_dataset(photo_folder, labels=coco)
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"file": "a1.jpg", "score": 0.3}]))
    with pytest.raises(DatasetError, match=r"keys file, score\) that name no image"):
        load_dataset(photo_folder, labels=other)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1, ')
    with pytest.raises(DatasetError, match="is not JSON .*line 1"):
        load_dataset(photo_folder, labels=broken)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(DatasetError, match="lists no tasks"):
        load_dataset(photo_folder, labels=empty)
    none = write_export(tmp_path / "none.json", [_task(1, LOCAL.format("a1.jpg"))], "JSON")
    with pytest.raises(DatasetError, match="none is annotated"):
        load_dataset(photo_folder, labels=none)


def test_an_export_naming_photos_that_are_not_there_names_them(photo_folder, tmp_path):
    tasks = [*_tasks(), _task(7, LOCAL.format("ghost.jpg"), _annotation(20, "B", ANA, 1))]
    export = write_export(tmp_path / "e.json", tasks, "JSON")
    with pytest.raises(DatasetError, match=r"1 task name photos that are not in .*task 7 ghost"):
        load_dataset(photo_folder, labels=export)


def test_train_and_evaluate_read_an_export_through_labels(tmp_path):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    exports = {}
    for split, fmt in (("train", "JSON"), ("dev", "CSV")):
        with (root / f"{split}.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        tasks = [_task(i, UPLOAD.format(i, r["image_id"]), _annotation(100 + i, r["label"],
                       ANA, i % 60)) for i, r in enumerate(rows, 1)]  # fmt: skip
        tasks.append(_task(999, LOCAL.format(rows[0]["image_id"])))  # listed, not annotated
        (tmp_path / "studio").mkdir(exist_ok=True)
        exports[split] = write_export(tmp_path / "studio" / f"{split}.{EXT[fmt]}", tasks, fmt)
    out = tmp_path / "run"
    trained = run("train", root / "train", "--labels", exports["train"], "--groups",
                  root / "groups.csv", "--preset", "colour-texture", "--cv", "3", "--set",
                  "n_estimators=20", "--out", out, "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "task 999" in trained.output and "no annotation" in trained.output
    evaluated = run("evaluate", out, root / "dev", "--labels", exports["dev"], "--bootstrap",
                    "50", "--out", tmp_path / "dev.json")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert (tmp_path / "dev.json").is_file()
    assert_clean_failure(
        run("evaluate", out, root / "dev", "--labels", exports["dev"], "--annotations", "most"),
        "--annotations must be latest or majority",
    )
    # data familiar reads it too, with the same --annotations (issue 38: every --labels)
    familiar = run("data", "familiar", out, root / "dev", "--labels", exports["dev"],
                   "--annotations", "majority", "--out", tmp_path / "fam", "--quiet")  # fmt: skip
    assert familiar.exit_code == 0, familiar.output
    assert "accuracy" in " ".join(familiar.output.split())
    assert_clean_failure(
        run(
            "data",
            "familiar",
            out,
            root / "dev",
            "--labels",
            exports["dev"],
            "--annotations",
            "most",
            "--out",
            tmp_path / "fam2",
        ),  # fmt: skip
        "--annotations must be latest or majority",
    )


# -- data corrections: Label Studio's grades back into the records -------------------------

PROBABILITIES = {"A": 0.6, "B": 0.3, "C": 0.1}


def _records(url: str, tmp_path: Path) -> tuple[Path, list[int]]:
    """Four kept photos graded A in lot L, the first two corrected to B by ana; the
    folder of kept photos (as serve's --keep-photos)."""
    from mangograde.records import ModelIdentity, PhotoRecord, correct, open_store

    store = open_store(url)
    kept = tmp_path / "kept"
    kept.mkdir()
    photos = []
    for i in range(4):
        data = write_photo(tmp_path / "sources" / f"p{i}.jpg", seed=i).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        (kept / f"{sha}.jpg").write_bytes(data)
        photos.append(PhotoRecord(f"mango {i}.jpg", sha, len(data), "A", PROBABILITIES))
    ids = store.record("L", ModelIdentity("colour", "cd" * 32), photos)
    for grading in ids[:2]:
        correct(store, grading, "B", "ana")
    return kept, ids


def _studio(url: str, kept: Path, tmp_path: Path) -> list[dict]:
    """`data labels --format label-studio --confirmed`'s tasks, as Label Studio holds them
    once imported: with task and annotation ids, completed by the user who imported them."""
    done = run("data", "labels", url, "--photos", kept, "--out", tmp_path / "labels",
               "--confirmed", "--format", "label-studio")  # fmt: skip
    assert done.exit_code == 0, done.output
    tasks = json.loads((tmp_path / "labels" / "tasks.json").read_text(encoding="utf-8"))
    imported = []
    for i, task in enumerate(tasks, 1):
        grade = task["annotations"][0]["result"][0]["value"]["choices"][0]
        imported.append(
            _task(
                i,
                task["data"]["image"],
                _annotation(50 + i, grade, ANA, 0),
                **{k: v for k, v in task["data"].items() if k != "image"},
            )
        )
    return imported


def test_data_labels_tasks_point_where_the_readme_serves_them(db_url, tmp_path):
    kept, _ = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)
    for task in tasks:  # document root: the folder holding labels/; Local Storage: labels/images
        url = task["data"]["image"]
        assert url.startswith("/data/local-files/?d=labels/images/")
        assert (tmp_path / url.split("?d=", 1)[1]).is_file()


@pytest.mark.parametrize("fmt", ["JSON", "JSON_MIN", "CSV"])
def test_data_corrections_appends_the_edits_once(db_url, tmp_path, fmt):
    from mangograde.records import history, labelled, open_store

    kept, ids = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)  # photos 0 and 1, corrected to B
    tasks[0]["annotations"].append(_annotation(90, "C", BEN, 30))  # ben later says C
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["A"]  # ana's own edit...
    tasks[1]["annotations"][0]["updated_at"] = _at(31)  # ...made in Label Studio
    export = write_export(tmp_path / f"export.{EXT[fmt]}", tasks, fmt)
    done = run("data", "corrections", export, "--db", db_url)
    assert done.exit_code == 0, done.output
    assert "Appended 2 corrections" in done.output
    store = open_store(db_url)
    first, second = history(store, ids[0]), history(store, ids[1])
    assert (first[-1].grade, first[-1].previous) == ("C", "B")
    assert first[-1].operator == "Label Studio user 2"
    assert first[-1].note == "from Label Studio, task 1, annotation 90"
    assert (second[-1].grade, second[-1].operator) == ("A", "ana@packhouse.example")
    assert second[-1].note == "from Label Studio, task 2, annotation 52"
    again = run("data", "corrections", export, "--db", db_url)
    assert again.exit_code == 0, again.output
    assert "Appended 0 corrections" in again.output and "2 already stood" in again.output
    assert len(history(store, ids[0])) == 2 and len(history(store, ids[1])) == 2
    # the next data labels includes them: photo 0 as C; photo 1 is back to the model's A
    rows = {r["grading_id"]: r["grade"] for r in labelled(store, confirmed=True)}
    assert rows == {ids[0]: "C", ids[1]: "A"}
    done = run("data", "labels", db_url, "--photos", kept, "--out", tmp_path / "next")
    assert done.exit_code == 0, done.output
    assert "Wrote 1 photos (A 0, B 0, C 1)" in done.output


def test_data_corrections_majority_and_a_later_correction_in_the_records(db_url, tmp_path):
    from mangograde.records import correct, history, open_store

    kept, ids = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)
    tasks[0]["annotations"] += [_annotation(91, "C", BEN, 30), _annotation(92, "C", 3, 31)]
    tasks[1]["annotations"].append(_annotation(93, "C", BEN, 1))  # 1-1: a tie
    export = write_export(tmp_path / "export.json", tasks, "JSON")
    tied = run("data", "corrections", export, "--db", db_url, "--annotations", "majority")
    assert_clean_failure(tied, "task 2 (", "no majority")
    store = open_store(db_url)
    assert len(history(store, ids[0])) == 1  # nothing written
    tasks[1]["annotations"].pop()
    write_export(export, tasks, "JSON")
    later = BASE + timedelta(days=1)  # on the page, after Label Studio's annotation
    correct(store, ids[1], "C", "carla", when=later)
    done = run("data", "corrections", export, "--db", db_url, "--annotations", "majority")
    assert done.exit_code == 0, done.output
    assert (
        "Appended 1 correction" in done.output and "corrected in the records after" in done.output
    )
    last = history(store, ids[0])[-1]
    assert last.grade == "C" and last.operator == "Label Studio user 2, Label Studio user 3"
    assert last.note == "from Label Studio, task 1, annotations 91, 92"
    assert history(store, ids[1])[-1].operator == "carla"  # left as it stands


def test_data_corrections_names_photos_not_in_the_records_and_refuses_bad_exports(db_url, tmp_path):
    from mangograde.records import history, open_store

    kept, ids = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["C"]
    stranger = _task(9, LOCAL.format("000777-someone-else.jpg"), _annotation(99, "B", ANA, 1))
    export = write_export(tmp_path / "export.json", [*tasks, stranger], "JSON")
    done = run("data", "corrections", export, "--db", db_url)
    assert done.exit_code == 0, done.output
    assert "1 photo not in the records" in done.output and "000777-someone-else.jpg" in done.output
    assert "Appended 1 correction" in done.output
    store = open_store(db_url)
    before = [len(history(store, i)) for i in ids]
    only_strangers = write_export(tmp_path / "strangers.json", [stranger], "JSON")
    assert_clean_failure(run("data", "corrections", only_strangers, "--db", db_url),
                         "None of the 1 photo", "000777-someone-else.jpg")  # fmt: skip
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert_clean_failure(run("data", "corrections", coco, "--db", db_url), "COCO")
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["Extra"]
    wrong = write_export(tmp_path / "wrong.json", tasks, "JSON")
    assert_clean_failure(run("data", "corrections", wrong, "--db", db_url),
                         "'Extra'", "grades A, B, C")  # fmt: skip
    assert [len(history(store, i)) for i in ids] == before  # nothing written


def test_data_corrections_reports_a_closed_lot_per_photo(db_url, tmp_path):
    closing = pytest.importorskip("mangograde.records.closing")
    from mangograde.records import history, open_store

    kept, ids = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["C"]
    export = write_export(tmp_path / "export.json", tasks, "JSON")
    store = open_store(db_url)
    closing.close_lot(store, "L", "dora")
    done = run("data", "corrections", export, "--db", db_url)
    assert done.exit_code == 0, done.output
    assert "Refused task 1" in done.output and "closed by dora" in done.output
    assert "Appended 0 corrections" in done.output and "1 refused" in done.output
    assert len(history(store, ids[0])) == 1


def test_not_a_mango_goes_to_label_studio_and_back(db_url, tmp_path):
    """Label Studio offers "not a mango" (exported as reject); `data corrections` keeps it
    as the operator's answer, and the next `data labels` puts the photo under reject/."""
    from mangograde.records import REJECT, history, open_store

    kept, ids = _records(db_url, tmp_path)
    tasks = _studio(db_url, kept, tmp_path)
    config = (tmp_path / "labels" / "label_config.xml").read_text(encoding="utf-8")
    assert f'<Choice value="not a mango" alias="{REJECT}"/>' in config
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = [REJECT]  # the alias
    export = write_export(tmp_path / "export.json", tasks, "JSON")
    done = run("data", "corrections", export, "--db", db_url)
    assert done.exit_code == 0, done.output
    assert "Appended 1 correction" in done.output
    assert history(open_store(db_url), ids[0])[-1].grade == REJECT
    again = run("data", "labels", db_url, "--photos", kept, "--out", tmp_path / "next")
    assert again.exit_code == 0, again.output
    assert "1 rejects (not a mango)" in " ".join(again.output.split())
    assert len(list((tmp_path / "next" / "reject").iterdir())) == 1
    with (tmp_path / "next" / "rejects.csv").open(encoding="utf-8") as handle:
        assert [r["grading_id"] for r in csv.DictReader(handle)] == [str(ids[0])]


@pytest.mark.parametrize("fmt", ["JSON", "CSV"])
def test_labels_leave_out_the_photos_answered_not_a_mango_and_name_them(
    photo_folder, tmp_path, fmt
):
    tasks = _tasks()
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["reject"]  # a2
    ds = load_dataset(photo_folder, labels=write_export(tmp_path / f"e.{EXT[fmt]}", tasks, fmt))
    assert ds.image_ids == ("a1.jpg", "b1.jpg", "b2.jpg", "c1.jpg")
    assert ds.grades == ("A", "B", "C")
    said = " ".join(ds.notices)
    assert "answered 'reject' (not a mango)" in said and "task 2 (a2.jpg)" in said
    assert "--reject-photos" in said
    for task in tasks:
        for annotation in task["annotations"]:
            if annotation["result"]:
                annotation["result"][0]["value"]["choices"] = ["reject"]
    with pytest.raises(DatasetError, match="no grade to learn from"):
        load_dataset(photo_folder, labels=write_export(tmp_path / f"all.{EXT[fmt]}", tasks, fmt))
