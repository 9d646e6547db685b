"""'Not a mango' (issue 37, point 3): the operator's answer "reject" beside the run's grades,
counted apart in the one lot summary, written apart by ``data labels``, and any photo of a
lot found by name to correct it (the records on SQLite and a real PostgreSQL, the API,
the command line and the page in chromium)."""

from __future__ import annotations

import csv
import hashlib
import re

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

from mangograde.basics.errors import SettingsError  # noqa: E402
from mangograde.records import (  # noqa: E402
    REJECT,
    FruitRecord,
    ModelIdentity,
    NoSuchRecord,
    PhotoRecord,
    correct,
    find_gradings,
    history,
    labelled,
    open_store,
    to_check,
)

from .test_cli import run  # noqa: E402

MODEL = ModelIdentity("colour", "cd" * 32)
P = {"A": 0.1, "B": 0.2, "C": 0.7}


def _photo(name: str, grade: str, fruit: str | None = None, check: bool = False) -> PhotoRecord:
    probabilities = {g: (0.8 if g == grade else 0.1) for g in "ABC"}
    return PhotoRecord(name, hashlib.sha256(name.encode()).hexdigest(), 10, grade, probabilities,
                       check=check, reason="unsure" if check else None, fruit=fruit)  # fmt: skip


def _lot(url: str) -> tuple:
    """Lot L: fruit f1 (two photos), f2 (one), a loose lemon and a loose mango marked check."""
    store = open_store(url)
    ids = store.record(
        "L", MODEL,
        [_photo("f1-top.jpg", "A", "f1"), _photo("f1-side.jpg", "A", "f1"),
         _photo("f2.jpg", "B", "f2"), _photo("Lemon_07.JPG", "A"),
         _photo("unsure.jpg", "C", check=True)],
        [FruitRecord("f1", "A", P), FruitRecord("f2", "B", P)],
    )  # fmt: skip
    return store, ids


def test_reject_is_an_answer_beside_the_grades_and_counted_apart(db_url):
    store, ids = _lot(db_url)
    made = correct(store, ids[3], REJECT, "ana", note="a lemon")
    assert (made.grade, made.previous) == ("reject", "A") and REJECT == "reject"
    assert [c.grade for c in history(store, ids[3])] == ["reject"]
    with pytest.raises(SettingsError, match=r"'Z' is not a grade .* A, B, C, or 'reject'"):
        correct(store, ids[3], "Z", "ana")
    s = store.summary("L")
    assert (s.gradings, s.rejects, s.graded) == (5, 1, 4)
    assert s.mix == {"A": 2, "B": 1, "C": 1} and "reject" not in s.mix
    assert (s.n_fruits, s.fruit_rejects, s.fruit_mix) == (2, 0, {"A": 1, "B": 1})
    # one photo of f1 rejected: the fruit keeps its grade; both: the fruit is a reject
    correct(store, ids[0], REJECT, "ana")
    assert store.summary("L").fruit_mix == {"A": 1, "B": 1}
    correct(store, ids[1], REJECT, "ben")
    s = store.summary("L", detail=True)
    assert (s.rejects, s.fruit_rejects, s.fruit_mix, s.n_fruits) == (3, 1, {"B": 1}, 2)
    assert [f["grade"] for f in s.fruits] == ["reject", "B"]
    # an undo is a new correction: the photo is a mango again
    correct(store, ids[1], "A", "ben")
    s = store.summary("L")
    assert (s.rejects, s.fruit_rejects, s.mix) == (2, 0, {"A": 1, "B": 1, "C": 1})
    # a reject of a photo marked check takes it off the queue
    correct(store, ids[4], REJECT, "ana")
    assert to_check(store, "L") == [] and store.summary("L").checks_left == 0
    rows = labelled(store)
    assert {r["photo"]: r["grade"] for r in rows} == {"Lemon_07.JPG": "reject",
                                                     "f1-top.jpg": "reject",
                                                     "unsure.jpg": "reject"}  # fmt: skip


def test_any_photo_of_a_lot_is_found_by_name_newest_first_and_paged(db_url):
    store, ids = _lot(db_url)
    store.record("Other", MODEL, [_photo("lemon-elsewhere.jpg", "A")])
    correct(store, ids[3], REJECT, "ana")
    found = find_gradings(store, "L", "lemon")  # any case, never marked check
    assert found.total == 1 and [r["photo"] for r in found.items] == ["Lemon_07.JPG"]
    (lemon,) = found.items
    assert (lemon["grade"], lemon["standing"], lemon["corrected"]) == ("A", "reject", True)
    assert lemon["corrected_by"] == "ana" and lemon["check"] is False
    everything = find_gradings(store, "L")
    assert everything.total == 5 and [r["grading_id"] for r in everything.items] == ids[::-1]
    page = find_gradings(store, "L", None, limit=2, offset=2)
    assert page.total == 5 and [r["grading_id"] for r in page.items] == ids[::-1][2:4]
    assert find_gradings(store, "L", "f1").total == 2  # the fruit's name too
    assert find_gradings(store, "L", "%").total == 0  # LIKE's wildcards are plain text
    assert find_gradings(store, "L", "_07").total == 1
    assert find_gradings(store, "L", "  ").total == 5  # blank: every grading
    assert find_gradings(store, "L", None, offset=99).items == []
    refused = [
        ({"search": "x" * 201}, "201 characters"),
        ({"search": "a\x00b"}, r"control characters \(U\+0000\)"),
        ({"search": "a\u202eb"}, "U\\+202E"),
        ({"limit": 0}, "limit=0: give 1 to 200"),
        ({"limit": 201}, "limit=201"),
        ({"offset": -1}, "offset=-1: give 0 or more"),
    ]
    for options, message in refused:
        with pytest.raises(SettingsError, match=message):
            find_gradings(store, "L", **options)
    with pytest.raises(NoSuchRecord, match="No lot named 'nope'"):
        find_gradings(store, "nope")


def test_lots_show_and_the_report_say_rejects(db_url, tmp_path):
    store, ids = _lot(db_url)
    correct(store, ids[3], REJECT, "ana")
    shown = run("lots", "show", "L", "--db", db_url)
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert "rejects 1 (20.0% of the photos)" in said
    # the grade shares are of the photos graded (4): the reject is in none of them
    assert "A 2 (50%), B 1 (25%), C 1 (25%)" in said and "reject" not in said.split("rejects")[0]
    page = tmp_path / "lot.html"
    done = run("lots", "report", "L", "--db", db_url, "--out", page)
    assert done.exit_code == 0, done.output
    text = page.read_text(encoding="utf-8")
    assert "<td>rejects</td><td>1 (20.0%)</td>" in text
    assert "<td>A</td><td>1</td><td>50.0%</td><td>2</td><td>50.0%</td>" in text
    by_grade = text.split("Fruits by grade, and photos")[1].split("<h2>")[0]
    assert "<td>reject</td>" not in by_grade
    table = tmp_path / "lot.csv"
    done = run("lots", "report", "L", "--db", db_url, "--out", table)
    assert done.exit_code == 0, done.output
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    head = rows[0]
    finals = [r[head.index("final_grade")] for r in rows[1:] if r[0].isdigit()]
    assert finals.count("reject") == 1
    assert next(r for r in rows if r[0] == "rejects")[:2] == ["rejects", "1"]
    digest = re.search(r"[0-9a-f]{64}", done.output).group(0)
    verified = run("lots", "verify", "L", "--db", db_url, "--digest", digest,
                   "--certificate", table)  # fmt: skip
    assert verified.exit_code == 0, verified.output  # the rejects row is read past


# -- through the service -------------------------------------------------------------------


def _upload(root, names):
    return [("files", (n, (root / "train" / n).read_bytes(), "image/jpeg")) for n in names]


def test_the_api_takes_reject_counts_it_and_finds_any_photo(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    url, kept = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "kept"
    names = [f"mango_0000{i}.jpg" for i in range(4)]
    options = ServeOptions(run=colour, db=url, keep_photos=kept, api_keys={"ana": "key-a"})
    ana = {"X-API-Key": "key-a"}
    with TestClient(create_app(options)) as client:
        body = client.post("/v1/grade", files=_upload(root, names), data={"lot": "L"},
                           headers=ana).json()  # fmt: skip
        ids = [r["grading_id"] for r in body["results"]]
        grades = client.get("/v1/model", headers=ana).json()["grades"]
        path = f"/v1/gradings/{ids[1]}/corrections"
        made = client.post(path, json={"grade": "reject", "note": "a lemon"}, headers=ana)
        assert made.status_code == 201, made.text
        assert made.json()["grade"] == "reject" and made.json()["previous"] in grades
        shown = client.get(path, headers=ana).json()
        assert shown["standing"] == "reject" and shown["grade"] == body["results"][1]["grade"]
        assert [c["grade"] for c in shown["corrections"]] == ["reject"]
        assert shown["corrections"][0]["note"] == "a lemon"
        untouched = client.get(f"/v1/gradings/{ids[0]}/corrections", headers=ana).json()
        assert untouched["corrections"] == [] and untouched["standing"] in grades
        assert client.get("/v1/gradings/9999/corrections", headers=ana).status_code == 404
        assert client.get(path).status_code == 401  # behind the key
        wrong = client.post(path, json={"grade": "lemon"}, headers=ana)
        assert wrong.status_code == 422
        detail = wrong.json()["detail"]
        assert "'lemon' is not a grade" in detail and ", ".join(grades) in detail
        assert "'reject'" in detail
        tally = client.get("/v1/lots/L", headers=ana).json()
        assert tally["rejects"] == 1 and sum(tally["mix"].values()) == 3
        assert tally["gradings"] == 4 and "reject" not in tally["mix"]
        # any photo of the lot, newest first, with what stands and whether it was corrected
        found = client.get("/v1/lots/L/gradings", headers=ana).json()
        assert found["total"] == 4 and [i["grading_id"] for i in found["items"]] == ids[::-1]
        by_id = {i["grading_id"]: i for i in found["items"]}
        assert by_id[ids[1]]["standing"] == "reject" and by_id[ids[1]]["corrected"] is True
        assert by_id[ids[0]]["corrected"] is False
        assert by_id[ids[0]]["photo_url"].startswith("/v1/photos/")
        one = client.get("/v1/lots/L/gradings", params={"search": "MANGO_00002"}, headers=ana)
        assert [i["photo"] for i in one.json()["items"]] == ["mango_00002.jpg"]
        paged = client.get("/v1/lots/L/gradings?limit=1&offset=1", headers=ana).json()
        assert paged["total"] == 4 and [i["grading_id"] for i in paged["items"]] == [ids[2]]
        assert client.get("/v1/lots/L/gradings").status_code == 401
        assert client.get("/v1/lots/nope/gradings", headers=ana).status_code == 404
        bad = {
            "long": client.get("/v1/lots/L/gradings", params={"search": "m" * 201}, headers=ana),
            "control": client.get("/v1/lots/L/gradings", params={"search": "m\x07"}, headers=ana),
            "negative": client.get("/v1/lots/L/gradings?offset=-1", headers=ana),
            "too many": client.get("/v1/lots/L/gradings?limit=1000", headers=ana),
        }
        assert {k: r.status_code for k, r in bad.items()} == dict.fromkeys(bad, 422)
        assert "201 characters" in bad["long"].json()["detail"]
        assert "control characters (U+0007)" in bad["control"].json()["detail"]
        assert bad["negative"].json()["detail"][0]["loc"] == ["query", "offset"]
        schema = client.get("/openapi.json").json()
        assert "/v1/lots/{lot}/gradings" in schema["paths"]
        assert "get" in schema["paths"]["/v1/gradings/{grading_id}/corrections"]
        assert "rejects" in schema["components"]["schemas"]["LotTally"]["properties"]


def test_data_labels_writes_the_rejects_apart_as_a_folder_of_photos(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    url, kept = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "kept"
    names = [f"mango_0000{i}.jpg" for i in range(4)]
    with TestClient(create_app(ServeOptions(run=colour, db=url, keep_photos=kept))) as client:
        results = client.post("/v1/grade", files=_upload(root, names), data={"lot": "L"}).json()[
            "results"
        ]
        grades = client.get("/v1/model").json()["grades"]
        answers = {0: "reject", 1: "reject", 2: next(g for g in grades if g != results[2]["grade"])}
        for i, answer in answers.items():
            made = client.post(f"/v1/gradings/{results[i]['grading_id']}/corrections",
                               json={"grade": answer, "operator": "ana"})  # fmt: skip
            assert made.status_code == 201, made.text
    out = tmp_path / "labels"
    done = run("data", "labels", url, "--photos", kept, "--out", out)
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert "Wrote 1 photos" in said and "and 2 rejects (not a mango)" in said
    assert str(out / "reject") in "".join(done.output.split())
    rejects = sorted(p.name for p in (out / "reject").iterdir())
    assert [n.split("-", 1)[1] for n in rejects] == names[:2]  # copies, named as in images/
    for name in rejects:  # the photos themselves
        original = root / "train" / name.split("-", 1)[1]
        assert (out / "reject" / name).read_bytes() == original.read_bytes()
    labels = list(csv.DictReader((out / "labels.csv").open(encoding="utf-8")))
    assert [r["image_id"].split("-", 1)[1] for r in labels] == [names[2]]
    assert "reject" not in {r["label"] for r in labels}  # never under a grade
    assert sorted(p.name for p in (out / "images").iterdir()) == [labels[0]["image_id"]]
    listed = list(csv.DictReader((out / "rejects.csv").open(encoding="utf-8")))
    assert sorted(r["image_id"] for r in listed) == rejects
    assert {r["model_grade"] for r in listed} <= set(grades) and listed[0]["operator"] == "ana"
    groups = (out / "groups.csv").read_text(encoding="utf-8")
    corrections = (out / "corrections.csv").read_text(encoding="utf-8")
    assert not any(n in groups + corrections for n in rejects)


# -- the page in chromium ------------------------------------------------------------------


def test_the_page_says_not_a_mango_and_finds_any_photo_after_a_reload(colour_run, tmp_path):
    """Press x on a photo (and click "Not a mango" on another): the lot line says the
    rejects at once; after a reload, find a photo never marked check by its name and
    correct it there."""
    pytest.importorskip("fastapi")
    sync_api = pytest.importorskip("playwright.sync_api")
    import httpx

    from mangograde.service import ServeOptions, create_app

    from .service_helpers import live_server
    from .test_service_page import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    expect = sync_api.expect
    root, colour = colour_run
    db, kept = f"sqlite:///{tmp_path / 'records.db'}", tmp_path / "kept"
    photos = [root / "train" / f"mango_0000{i}.jpg" for i in range(6)]
    app = create_app(ServeOptions(run=colour, db=db, keep_photos=kept))
    with live_server(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 412, "height": 915}).new_page()
        page.goto(url)
        expect(page.locator("#operator")).to_be_visible()
        page.fill("#lot", "L")
        page.press("#lot", "Tab")
        page.fill("#operator", "Ana")
        page.press("#operator", "Tab")
        page.set_input_files("#pick", [str(p) for p in photos[:2]])
        cards = page.locator("#photos .photo")
        expect(cards.locator(".corrections")).to_have_count(2, timeout=20000)
        by_name = {cards.nth(i).locator(".name").inner_text(): cards.nth(i) for i in range(2)}
        first, second = by_name[photos[0].name], by_name[photos[1].name]
        first.focus()  # selected: x answers "not a mango"
        page.keyboard.press("x")
        expect(first.locator(".corrected")).to_have_text("Not a mango, said Ana")
        expect(page.locator("#lot-tally")).to_contain_text("rejects 1")
        second.locator(".corrections button[data-grade='reject']").click()
        expect(second.locator(".corrected")).to_have_text("Not a mango, said Ana")
        expect(page.locator("#lot-tally")).to_contain_text("rejects 2")
        expect(page.locator("#tally li[data-grade=reject]")).to_have_text("not a mango: 2")
        assert "Not a mango" in second.locator(".corrections button.reject").inner_text()
        page.set_input_files("#pick", [str(p) for p in photos[2:]])
        expect(cards.locator(".corrections")).to_have_count(6, timeout=20000)
        listed = httpx.get(f"{url}/v1/lots/L/gradings").json()["items"]
        never = [i for i in listed if not i["check"] and not i["corrected"]]
        assert never, listed  # a photo the to-check list would never show
        target = never[0]

        page.reload()  # what the page shows now comes from the records alone
        expect(page.locator("#photos .photo")).to_have_count(0)
        expect(page.locator("#lot-tally")).to_contain_text("rejects 2")
        page.fill("#find", target["photo"].removesuffix(".jpg").upper())
        page.press("#find", "Enter")
        found = page.locator("#found .photo")
        expect(found).to_have_count(1)
        expect(found.locator(".name")).to_have_text(target["photo"])
        expect(found.locator(".status")).to_have_text(f"Grade {target['grade']}")
        page.wait_for_function("document.querySelector('#found img').naturalWidth > 0")
        found.focus()
        page.keyboard.press("x")
        expect(found.locator(".corrected")).to_have_text("Not a mango, said Ana")
        expect(page.locator("#lot-tally")).to_contain_text("rejects 3")
        other = next(g for g in "ABC" if g != target["grade"])
        found.locator(f".corrections button[data-grade='{other}']").click()  # changed my mind
        expect(found.locator(".corrected")).to_have_text(f"Corrected to {other} by Ana")
        expect(page.locator("#lot-tally")).to_contain_text("rejects 2")
        # every photo of the lot, newest first, the rejects shown as such
        page.fill("#find", "")
        page.click("#find-go")
        expect(page.locator("#found .photo")).to_have_count(6)
        expect(page.locator("#find-status")).to_contain_text("6 photos, 6 shown")
        # one pick's photos are sent at once: the first two were graded in either order
        shown = page.locator("#found .photo")
        oldest = {shown.nth(i).locator(".name").inner_text(): shown.nth(i) for i in (4, 5)}
        assert set(oldest) == {photos[0].name, photos[1].name}
        for card in oldest.values():
            expect(card.locator(".corrected")).to_have_text("Not a mango, said Ana")
        page.screenshot(path=str(tmp_path / "rejects.png"), full_page=True)
        page.fill("#find", "a\tb")  # a control character: the service says what is wrong
        page.press("#find", "Enter")
        expect(page.locator("#find-status")).to_contain_text("control characters")
        browser.close()
    store = open_store(db)
    assert [c.grade for c in history(store, target["grading_id"])] == ["reject", other]
    assert store.summary("L").rejects == 2
