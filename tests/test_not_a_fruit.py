"""Never grade what is not a mango (issue 37, point 1): the not-a-fruit check a run makes
at train time, answered ``check`` with its own reason by ``predict``, ``evaluate``, the
service, fruits and the export (torch-free), and refused when tampered with."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mangograde.evaluation.not_a_fruit import METHOD, REASON

from .test_adapt_keep import orchard  # noqa: F401 - the fixture
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv


def _not_mangoes(folder):
    """Random noise and an empty grey tray: nothing like the synthetic mangoes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    tray = (150 + rng.normal(0, 6, size=(48, 48, 3))).clip(0, 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    Image.fromarray(tray).save(folder / "tray.png")
    return folder


def _trays(folder, n: int, side: int):
    """``n`` photos of an empty grey tray, each a shade lighter."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        tray = 130 + 5 * i + rng.normal(0, 6, size=(side, side, 3))
        Image.fromarray(tray.clip(0, 255).astype(np.uint8)).save(folder / f"tray_{i}.png")
    return folder


def test_a_run_leaves_what_is_not_a_mango_to_check_for_its_own_reason(colour_run, tmp_path):
    root, colour = colour_run
    record = json.loads((colour / "metrics.json").read_text())["not_a_fruit"]
    assert record["method"] == METHOD and record["threshold"] > record["held_out_max"] > 0
    odd = _not_mangoes(tmp_path / "odd")
    dev = sorted((root / "dev").iterdir())[:6]
    result = run("predict", colour, *dev, odd, "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    rows = {r["image_id"]: r for r in read_csv(tmp_path / "p.csv")}
    for name in ("noise.png", "tray.png"):
        assert (rows[name]["label"], rows[name]["reason"]) == ("check", REASON)
    assert all(rows[p.name]["reason"] != REASON for p in dev)  # the run's own kind of photo
    assert "Not a mango (nothing like the run's training photos; never graded): 2 photos" in (
        result.output
    )
    # --familiar off grades unfamiliar mangoes; what is not a mango stays ungraded
    off = run("predict", colour, odd, "--familiar", "off", "--out", tmp_path / "q.csv")
    assert off.exit_code == 0, off.output
    assert {r["reason"] for r in read_csv(tmp_path / "q.csv")} == {REASON}
    # a fruit with a photo that is not a mango is not graded either
    fruits = tmp_path / "fruits"
    (fruits / "f1").mkdir(parents=True)
    shutil.copy(dev[0], fruits / "f1" / dev[0].name)
    shutil.copy(odd / "tray.png", fruits / "f1" / "tray.png")
    got = run("predict", colour, fruits, "--fruit-folders", "--out", tmp_path / "f.csv")
    assert got.exit_code == 0, got.output
    fruit = read_csv(tmp_path / "fruits.csv")[0]
    assert (fruit["grade"], fruit["check"], fruit["reason"]) == ("", "yes", REASON), fruit


def test_the_export_keeps_the_check_and_refuses_it_tampered(colour_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from mangograde.graders import ExportError, open_grader
    from mangograde.graders.schema import ManifestError
    from mangograde.images import load_images

    root, colour = colour_run
    export = tmp_path / "export"
    made = run("export", colour, "--out", export)
    assert made.exit_code == 0, made.output
    manifest = json.loads((export / "grader.json").read_text())
    assert manifest["not_a_fruit"]["method"] == METHOD
    odd = _not_mangoes(tmp_path / "odd")
    paths = [*sorted((root / "dev").iterdir())[:4], odd / "noise.png", odd / "tray.png"]
    ours, theirs = open_grader(colour), open_grader(export)
    images = load_images(paths, ours.geometry).arrays
    np.testing.assert_allclose(
        theirs.not_a_fruit.scores(images), ours.not_a_fruit.scores(images), rtol=1e-4
    )
    assert list(theirs.foreign(images)) == [False] * 4 + [True, True]
    # its fields and files checked like the rest of the export
    lying = tmp_path / "lying"
    shutil.copytree(export, lying)
    manifest["not_a_fruit"]["graph"] = "../elsewhere.onnx"
    (lying / "grader.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="field 'not_a_fruit'"):
        open_grader(lying)
    changed = tmp_path / "changed"
    shutil.copytree(export, changed)
    with np.load(changed / "not_a_fruit.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["not_a_fruit/threshold"] = np.array(1e9)  # grade everything
    np.savez(changed / "not_a_fruit.npz", **arrays)
    with pytest.raises(ExportError, match="not_a_fruit.npz is not the file that was exported"):
        open_grader(changed)


def test_the_service_answers_not_a_fruit_and_never_a_grade_on_the_page(colour_run, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    odd = _not_mangoes(tmp_path / "odd")
    own = sorted((root / "dev").iterdir())[0]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in (own, odd / "tray.png")]
    with TestClient(create_app(ServeOptions(run=colour))) as client:
        body = client.post("/v1/grade", files=files, data={"fruit": "f1"}).json()
    results = {r["image_id"]: r for r in body["results"]}
    assert results["tray.png"]["check"] and results["tray.png"]["reason"] == REASON
    assert results[own.name].get("reason") != REASON
    assert body["fruits"][0]["check"] and body["fruits"][0]["reason"] == REASON

    sync_api = pytest.importorskip("playwright.sync_api")
    from .service_helpers import live_server
    from .test_service_page import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    with live_server(create_app(ServeOptions(run=colour))) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#pick", [str(odd / "tray.png")])
        card = page.locator("#photos .photo")
        sync_api.expect(card.locator(".status")).to_contain_text("Not a mango?", timeout=20000)
        status = card.locator(".status").inner_text()
        assert not any(g in status for g in json.loads((colour / "metrics.json").read_text())
                       .get("grades", []))  # fmt: skip
        assert card.locator("meter").count() == 0 and card.locator("button.why").count() == 0
        browser.close()


def test_the_check_can_be_left_out_and_a_bad_setting_is_named(synth_small, tmp_path):
    from mangograde.graders import open_grader
    from mangograde.images import load_images

    from .service_helpers import train_tiny

    bad = run("train", synth_small / "train", "--labels", synth_small / "train.csv",
              "--model", "colour", "--set", "familiar.not_a_fruit=maybe",
              "--out", tmp_path / "bad")  # fmt: skip
    assert_clean_failure(bad, "not_a_fruit must be bool", "'maybe'")
    off = train_tiny(synth_small, tmp_path / "off", "--model", "colour", "--cv", "2",
                     "--set", "familiar.not_a_fruit=false")  # fmt: skip
    grader = open_grader(off)
    assert grader.not_a_fruit is None and any("no not-a-fruit check" in n for n in grader.notices)
    images = load_images([_not_mangoes(tmp_path / "odd") / "noise.png"], grader.geometry).arrays
    assert grader.foreign(images) is None


@pytest.fixture(scope="module")
def synth_small(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("not-a-fruit") / "s", n=18, size=40, seed=5)


def test_reject_photos_teach_the_check_what_else_to_answer_not_a_fruit():
    from mangograde.evaluation.not_a_fruit import NotAFruitModel

    rng = np.random.default_rng(0)
    mangoes = rng.normal(0, 1, size=(60, 8)) + 10 * np.eye(8)[0]
    near = 10 * np.eye(8)[0] + 6 * np.eye(8)[1]  # within the threshold's margin
    rejects = rng.normal(0, 1, size=(12, 8)) + near
    folds = [(np.flatnonzero(np.arange(60) % 3 != k), np.flatnonzero(np.arange(60) % 3 == k))
             for k in range(3)]  # fmt: skip
    plain = NotAFruitModel.fit(mangoes, folds, "sha")
    taught = NotAFruitModel.fit(mangoes, folds, "sha", rejects=rejects)
    new_rejects = rng.normal(0, 1, size=(10, 8)) + near
    new_mangoes = rng.normal(0, 1, size=(10, 8)) + 10 * np.eye(8)[0]
    assert taught.flags(new_rejects).all() and not taught.flags(new_mangoes).any()
    assert not plain.flags(new_rejects).any()  # the distance alone let them through
    record = taught.record()["reject_photos"]
    assert record["n"] == 12 and record["held_out_caught"] == 1.0
    assert record["mangoes_taken_for_rejects"] == 0.0
    back = NotAFruitModel.from_arrays(taught.arrays(), "here")
    assert (back.flags(new_rejects) == taught.flags(new_rejects)).all()


def test_train_with_reject_photos_and_its_bad_input(synth_small, tmp_path):
    from mangograde.graders import open_grader
    from mangograde.images import load_images

    trays = _trays(tmp_path / "trays", 5, 40)
    rng = np.random.default_rng(3)
    data = [synth_small / "train", "--labels", synth_small / "train.csv", "--model", "colour",
            "--cv", "2"]  # fmt: skip
    made = run("train", *data, "--reject-photos", trays, "--out", tmp_path / "run")
    assert made.exit_code == 0, made.output
    assert "Reject photos: 5; each held out from the others, 100% answered not-a-fruit" in (
        made.output
    )
    grader = open_grader(tmp_path / "run")
    assert grader.not_a_fruit.model.rejects.shape == (5, 40)
    other = (145 + rng.normal(0, 6, size=(40, 40, 3))).clip(0, 255).astype(np.uint8)
    Image.fromarray(other).save(tmp_path / "another_tray.png")
    images = load_images([tmp_path / "another_tray.png"], grader.geometry).arrays
    assert list(grader.foreign(images)) == [True]
    # one clear error each, nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    twice = tmp_path / "twice"
    twice.mkdir()
    first = sorted((synth_small / "train").iterdir())[0]
    shutil.copy(first, twice / "renamed.jpg")
    for folder, said in ((tmp_path / "nowhere", "no such folder"), (empty, "holds no photo"),
                         (twice, "also training photos")):  # fmt: skip
        out = tmp_path / f"bad-{folder.name}"
        assert_clean_failure(run("train", *data, "--reject-photos", folder, "--out", out), said)
        assert not out.exists()


def test_adapt_keeps_the_check_counts_the_new_orchard_and_takes_reject_photos(
    orchard,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    from mangograde.graders import open_grader
    from mangograde.images import load_images

    parent, new, labels, groups = orchard
    trays = _trays(tmp_path / "trays", 4, 48)
    out = tmp_path / "adapted"
    done = run("adapt", parent, new, "--labels", labels, "--groups", groups,
               "--reject-photos", trays, "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    record = json.loads((out / "metrics.json").read_text())["not_a_fruit"]
    assert record["method"] == METHOD and record["n_new_photos"] == 36
    assert record["held_out_new_flagged"] <= 0.05  # the new orchard is a mango like any other
    assert "Not-a-fruit check adapted:" in done.output and "4 reject photos" in done.output
    grader = open_grader(out)
    assert grader.not_a_fruit.model.rejects.shape == (4, 40)
    assert len(grader.not_a_fruit.model.lines) == 1 == len(record["lines"])  # the new line
    odd = _not_mangoes(tmp_path / "odd")
    images = load_images([odd / "noise.png", odd / "tray.png"], grader.geometry).arrays
    assert list(grader.foreign(images)) == [True, True]  # what is not a mango stays so
    exported = run("export", out, "--out", tmp_path / "adapted-export")
    assert exported.exit_code == 0, exported.output
    shipped = open_grader(tmp_path / "adapted-export")  # the line goes to the line box too
    assert len(shipped.not_a_fruit.model.lines) == 1
    assert list(shipped.foreign(images)) == [True, True]
    # one clear error each
    assert_clean_failure(run("adapt", parent, new, "--unlabelled", "--reject-photos", trays,
                             "--out", tmp_path / "u"), "--unlabelled")  # fmt: skip
    assert_clean_failure(run("adapt", parent, new, "--labels", labels, "--reject-photos",
                             tmp_path / "none", "--out", tmp_path / "n"),
                         "no such folder")  # fmt: skip
    assert not (tmp_path / "u").exists() and not (tmp_path / "n").exists()


def test_a_new_line_is_a_model_of_its_own_so_what_lies_between_the_lines_stays_flagged():
    """Two lines' photos in one model spread past either line: a photo between them (a
    lemon between two orchards' mangoes) is taken in. Each line its own model keeps it out,
    and both lines' photos stay mangoes; the lines survive the stored arrays."""
    from mangograde.evaluation.not_a_fruit import NotAFruitModel, fit_by_parts

    rng = np.random.default_rng(3)
    d, n = 8, 120

    def photos(count, spread):  # one line: photos spread along one axis of its own
        return (
            np.eye(d)[0] + rng.normal(0, 0.01, (count, d)) + rng.normal(0, 0.1, (count, 1)) * spread
        )

    one, two = photos(n, np.eye(d)[2]), photos(n, np.eye(d)[3])
    between = photos(20, 0) + 0.15 * (np.eye(d)[2] + np.eye(d)[3])  # off both lines' axes
    parts = np.arange(n) % 5
    parent = fit_by_parts(one, parts, "sha")
    assert parent.flags(between).all()
    pooled = fit_by_parts(np.concatenate([one, two]), np.concatenate([parts, parts + 5]), "sha",
                          margin=1.0)  # fmt: skip
    assert not pooled.flags(between).any()  # one model of both lines takes them in
    adapted = parent.with_line(two, parts)
    assert adapted.flags(between).all()
    assert adapted.flags(one).mean() <= 0.02 and adapted.flags(two).mean() <= 0.02
    again = NotAFruitModel.from_arrays(adapted.arrays(), "stored")
    assert len(again.lines) == 1 and adapted.record()["lines"][0]["margin"] == 1.0
    assert np.allclose(again.scores(between), adapted.scores(between))
    damaged = adapted.arrays() | {"not_a_fruit/line1/threshold": np.array(-1.0)}
    with pytest.raises(Exception, match="line1 is damaged"):
        NotAFruitModel.from_arrays(damaged, "stored")


def test_adapt_keeps_the_parents_check_when_the_new_photos_are_one_fruit(
    orchard,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    """A line's own model needs two parts of its photos to set its threshold: photos of
    one fruit keep the parent's check, and adapt says so."""
    from mangograde.graders import open_grader

    parent, new, labels, groups = orchard
    rows = groups.read_text().splitlines()
    one = tmp_path / "one_fruit.csv"
    one.write_text(rows[0] + "\n" + "".join(f"{r.split(',')[0]},f1\n" for r in rows[1:]))
    out = tmp_path / "adapted"
    done = run("adapt", parent, new, "--labels", labels, "--groups", one, "--keep", "adapted",
               "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert (
        "Not-a-fruit check kept as the parent's: the new photos make fewer than two parts" in said
    )
    record = json.loads((out / "metrics.json").read_text())["not_a_fruit"]
    assert record["held_out_new_flagged"] is None and "lines" not in record
    assert open_grader(out).not_a_fruit.model.lines == ()
