"""What a new user tripped over on the line, third round (issue 40): each point through
the command line, the API or the page in chromium."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

from .test_new_user import TINY_RF, folders

GRADES = ("Extra_Class", "Class_I", "Class_II")


def run(*args: object, **extra):
    return CliRunner().invoke(app, [str(a) for a in args], **extra)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """Photos in grade folders named as mango-grading names them, two photos a fruit, and
    a run trained on them by fruit as the README says (no calibration setting given)."""
    root = tmp_path_factory.mktemp("line")
    data = folders(root / "data", GRADES, per=8)
    rows = [f"{g}/{p.name},{g}-{i // 2}" for g in GRADES
            for i, p in enumerate(sorted((data / g).iterdir()))]  # fmt: skip
    groups = root / "groups.csv"
    groups.write_text("image,group\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = root / "run"
    trained = run("train", data, *TINY_RF, "--groups", groups, "--out", out)
    assert trained.exit_code == 0, trained.output
    return data, groups, out, trained.output


def test_a_run_is_calibrated_by_default_where_its_fruits_allow_and_says_so(line, tmp_path):
    data, _, out, said = line
    assert "Calibrated by default" in " ".join(said.split())
    assert (out / "calibration.json").is_file()
    assert "calibration: temperature" in (out / "config.yaml").read_text(encoding="utf-8")
    alone = run("train", data, *TINY_RF, "--out", tmp_path / "plain")  # no fruits, 24 photos
    assert alone.exit_code == 0, alone.output
    assert "Not calibrated" in " ".join(alone.output.split())
    assert not (tmp_path / "plain" / "calibration.json").exists()
    off = run("train", data, *TINY_RF, "--groups", line[1], "--set", "calibration=none",
              "--out", tmp_path / "off")  # fmt: skip
    assert off.exit_code == 0 and not (tmp_path / "off" / "calibration.json").exists()


def test_evaluate_names_the_extreme_grades_and_puts_words_before_symbols(line, tmp_path):
    data, groups, out, _ = line
    result = run("evaluate", out, data, "--groups", groups, "--bootstrap", "20",
                 "--out", tmp_path / "e.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "Extra_Class↔Class_II errors" in said and "A↔C" not in said
    assert "Grade agreement (QWK)" in said or "grade agreement" in said
    assert "calibration error" in said.lower() and "(ECE; 0 is perfect)" in said
    report = tmp_path / "r.html"
    compared = run("compare", out, "--out", report, "--mistakes", "0", "--bootstrap", "20")
    assert compared.exit_code == 0, compared.output
    page = report.read_text(encoding="utf-8")
    assert "Grade agreement (QWK)" in page and "Extra_Class↔Class_II errors" in page


def test_help_never_cuts_an_option_or_a_default_at_any_width():
    for width in (40, 80, 200):
        helped = run("serve", "--help", terminal_width=width).output
        assert "…" not in helped, helped
        for option in ("--max-request-pixels", "--keep-photos-limit-mb", "--record-failures"):
            assert option in helped
        assert "mangograde-records.db" in "".join(helped.split())


def test_suggest_knows_photos_that_data_labels_renamed(line, tmp_path):
    data, _, out, _ = line
    labelled = sorted((data / "Class_I").iterdir())[:3]
    labels = tmp_path / "labels"
    (labels / "images").mkdir(parents=True)
    names = [f"00003{i}-9001{i}.jpg" for i in range(3)]  # as data labels names its copies
    for photo, name in zip(labelled, names, strict=True):
        shutil.copyfile(photo, labels / "images" / name)
    rows = "".join(f"{name},Class_I\n" for name in names)
    (labels / "labels.csv").write_text("image_id,label\n" + rows, encoding="utf-8")
    pick = tmp_path / "pick.csv"
    result = run("suggest", out, data, "--labelled", labels / "labels.csv", "--n", "30",
                 "--out", pick, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(3 already labelled)" in " ".join(result.output.split())
    with pick.open(encoding="utf-8", newline="") as handle:
        picked = " ".join(" ".join(row) for row in csv.reader(handle))
    assert not any(photo.name in picked for photo in labelled)


def test_explain_takes_files_like_grade_and_a_wrong_field_names_the_right_one(line, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    data, _, out, _ = line
    photo = next((data / "Class_I").iterdir())
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with TestClient(create_app(ServeOptions(run=out, db=db, lime_samples=20))) as client:
        one = ("m.jpg", photo.read_bytes(), "image/jpeg")
        explained = client.post("/v1/explain", files={"files": one})
        assert explained.status_code == 200 and explained.headers["content-type"] == "image/png"
        assert client.post("/v1/explain", files={"file": one}).status_code == 200
        wrong = client.post("/v1/grade", files={"file": one})
        assert wrong.status_code == 422
        detail = wrong.json()["detail"]
        assert "`files`" in detail and "`file`" in detail, detail
        two = client.post("/v1/explain", files=[("files", one), ("files", one)])
        assert two.status_code == 422 and "one photo" in two.json()["detail"]
        empty = client.post("/v1/grade", files={"files": one}, data={"lot": "  "})
        assert empty.status_code == 422 and "empty lot" in empty.json()["detail"]
        blank = client.post("/v1/grade", files={"files": one}, data={"lot": ""})
        assert blank.status_code == 422 and "empty lot" in blank.json()["detail"]
        model = client.get("/v1/model").json()
        assert 0 <= model["metrics"]["fruit_accuracy"] <= 1  # the page's headline for fruits
    assert (
        json.loads((out / "metrics.json").read_text())["fruit"]["accuracy"]["value"]
        == (model["metrics"]["fruit_accuracy"])
    )


def test_a_stack_with_too_few_photos_for_its_inner_folds_says_so(tmp_path):
    data = folders(tmp_path / "few", ("A", "B", "C"), per=6)
    result = run("train", data, "--model", "stack", "--set", "members=[svm-study, rf-study]",
                 "--set", "inner_cv=2", "--cv", "2", "--out", tmp_path / "s")  # fmt: skip
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "inner fold" in result.output, result.output
    assert "Add photos of every grade" in " ".join(result.output.split())


def _browser():
    return pytest.importorskip("playwright.sync_api")


def test_the_page_abbreviates_grades_distinctly_and_heads_with_what_it_grades(line):
    pytest.importorskip("fastapi")
    from .test_service_page import CHROMIUM, live_server

    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    sync_api = _browser()
    from mangograde.service import ServeOptions, create_app

    data, _, out, _ = line
    photo = next((data / "Class_I").iterdir())
    with live_server(create_app(ServeOptions(run=out))) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 360, "height": 800}).new_page()
        page.goto(url)
        header = page.locator("#model")
        sync_api.expect(header).to_contain_text("a photo (")
        sync_api.expect(header).to_contain_text("a fruit)")
        page.check("#fruit-mode")
        sync_api.expect(header).to_contain_text("a fruit (")
        page.uncheck("#fruit-mode")
        page.set_input_files("#pick", [str(photo)])
        sync_api.expect(page.locator(".status", has_text="Grading")).to_have_count(0, timeout=20000)
        labels = page.locator("#photos .bar span:first-child")
        sync_api.expect(labels).to_have_count(3)
        shown = [labels.nth(i).inner_text() for i in range(3)]
        titles = [labels.nth(i).get_attribute("title") for i in range(3)]
        browser.close()
    assert shown == ["Extra", "I", "II"] and titles == list(GRADES)
    assert Path(out).is_dir()


@pytest.mark.parametrize("name", ["2026-12-07", "2026-12-07-orchard-north-bin-12-morning-shift"])
def test_lots_list_never_cuts_the_lot_name_to_type_next(name, tmp_path):
    pytest.importorskip("sqlalchemy")
    import hashlib

    from mangograde.records import ModelIdentity, PhotoRecord, open_store

    url = f"sqlite:///{tmp_path / 'r.db'}"
    sha = hashlib.sha256(b"a").hexdigest()
    photo = PhotoRecord("a.jpg", sha, 1, "A", {"A": 1.0, "B": 0.0, "C": 0.0})
    open_store(url).record(name, ModelIdentity("run", "ab" * 32), [photo])
    listed = run("lots", "list", "--db", url)
    assert listed.exit_code == 0, listed.output
    assert name in listed.output and "…" not in listed.output, listed.output
