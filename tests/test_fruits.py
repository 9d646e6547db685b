"""Grade the fruit, not the photo: the fruit rule, the fruit level of a run, and the
commands and service that grade fruits from several photos."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mangograde.basics.errors import DatasetError, SettingsError
from mangograde.evaluation import evaluate
from mangograde.evaluation.decisions import GradingRule
from mangograde.evaluation.fruits import Fruits, combine, fruit_folds, fruit_labels
from mangograde.evaluation.temperature import apply_temperature, fit_temperature
from mangograde.images import load_images
from mangograde.runs import open_predictor, open_run

from .service_helpers import NO_FLIPS, TINY_CNN, train_tiny
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv

COLOUR = ["--preset", "colour-texture", "--set", "n_estimators=20", "--cv", "3"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("fruits") / "s", n=36, size=48, seed=2)


@pytest.fixture(scope="module")
def colour_run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "colour"
    return train_tiny(synth, out, *COLOUR, "--set", "calibration=temperature")


def _groups(synth: Path) -> dict[str, str]:
    rows = read_csv(synth / "groups.csv")
    return {
        Path(r["image_id"]).name: r["group"] for r in rows if r["image_id"].startswith("train/")
    }


# -- the rule ----------------------------------------------------------------------------


def test_photos_without_a_fruit_id_are_fruits_of_their_own():
    fruits = Fruits.from_ids(["f1", "", "f1", None, "f2"], ["a", "b", "c", "d", "e"])
    assert fruits.names == ("f1", "b", "d", "f2")
    assert fruits.of.tolist() == [0, 1, 0, 2, 3]
    assert fruits.counts.tolist() == [2, 1, 1, 1]


def test_mean_and_log_mean_combine_a_fruits_photos():
    proba = np.array([[0.9, 0.1, 0.0], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    fruits = Fruits.from_ids(["x", "x", "y"])
    mean = combine(proba, fruits, "mean")
    np.testing.assert_allclose(mean, [[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    logs = combine(proba, fruits, "log-mean")
    geometric = np.sqrt([0.9 * 0.5, 0.1 * 0.3, 1e-12 * 0.2])
    np.testing.assert_allclose(logs[0], geometric / geometric.sum(), rtol=1e-6)
    np.testing.assert_allclose(logs[1], proba[2])
    with pytest.raises(SettingsError, match="Unknown fruit.rule 'max'"):
        combine(proba, fruits, "max")


def test_a_fruits_label_is_its_photos_most_frequent_grade_ties_to_the_worse():
    fruits = Fruits.from_ids(["x", "x", "x", "y", "y", "z"])
    codes, mixed = fruit_labels([0, 0, 1, 0, 2, 1], fruits)
    assert codes.tolist() == [0, 2, 1] and mixed == 2


def test_fruit_level_scores_are_refused_when_a_fruit_spans_two_folds():
    fruits = Fruits.from_ids(["x", "x", "y"])
    assert fruit_folds(np.array([1, 1, 0]), fruits).tolist() == [1, 0]
    with pytest.raises(DatasetError, match="not split by fruit"):
        fruit_folds(np.array([0, 1, 1]), fruits)


def test_the_rule_scales_the_fruit_then_decides_and_abstains():
    proba = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    fruits = Fruits.from_ids(["x", "x"])
    rule = GradingRule("argmax", None, 0.9, "mean", fruit_temperature=0.5)
    fruit_proba, codes = rule.grade_fruits(proba, fruits)
    np.testing.assert_allclose(fruit_proba, apply_temperature([[0.55, 0.25, 0.2]], 0.5))
    assert codes.tolist() == [0]
    cautious = replace(rule, decision="min-cost", fruit_temperature=None)
    assert cautious.grade_fruits(np.array([[0.45, 0.1, 0.45]]), Fruits.from_ids(["x"]))[1] == [1]


# -- train -------------------------------------------------------------------------------


def test_train_reports_the_fruit_level_from_out_of_fold_fruits(synth, colour_run):
    metrics = json.loads((colour_run / "metrics.json").read_text())
    held = read_csv(colour_run / "predictions.csv")
    fruits = read_csv(colour_run / "fruits.csv")
    grades = metrics["grades"]
    groups = sorted({r["group"] for r in held})
    assert sorted(r["fruit"] for r in fruits) == groups
    assert metrics["fruit"]["n"] == len(groups) < len(held)
    calibration = json.loads((colour_run / "calibration.json").read_text())["fruit"]
    for row in fruits:  # the mean of its photos' out-of-fold probabilities, then its fold's T
        photos = [r for r in held if r["group"] == row["fruit"]]
        assert int(row["photos"]) == len(photos)
        assert {r["fold"] for r in photos} == {row["fold"]}
        mean = np.mean([[float(r[f"p_{g}"]) for g in grades] for r in photos], axis=0)
        scaled = apply_temperature(mean[None], calibration["per_fold"][row["fold"]])[0]
        found = [float(row[f"p_{g}"]) for g in grades]
        np.testing.assert_allclose(found, scaled, atol=2e-6)
        assert row["predicted"] == grades[int(np.argmax(found))]
        assert row["true"] == photos[0]["true"]
    # each fold's T was fit on the other folds' fruits only
    table = np.array([[float(r[f"p_{g}"]) for g in grades] for r in held])
    fold_0 = [f for f in fruits if f["fold"] == "0"]
    others = sorted({r["group"] for r in held if r["fold"] != "0"})
    means = np.array([table[[i for i, r in enumerate(held) if r["group"] == f]].mean(axis=0)
                      for f in others])  # fmt: skip
    truth = [grades.index(next(r["true"] for r in held if r["group"] == f)) for f in others]
    assert calibration["per_fold"]["0"] == pytest.approx(fit_temperature(means, truth))
    assert fold_0
    right = np.mean([r["true"] == r["predicted"] for r in fruits])
    assert metrics["fruit"]["accuracy"]["value"] == pytest.approx(right)
    record = evaluate(
        [grades.index(r["true"]) for r in fruits],
        [grades.index(r["predicted"]) for r in fruits],
        grades,
        np.array([[float(r[f"p_{g}"]) for g in grades] for r in fruits]),
    )
    assert metrics["fruit"]["ece"] == pytest.approx(record["calibration"]["ece"], abs=1e-5)


def test_train_prints_the_fruit_level_and_takes_the_rule_as_a_setting(synth, tmp_path):
    data = [synth / "train", "--labels", synth / "train.csv", "--groups", synth / "groups.csv"]
    result = run("train", *data, *COLOUR, "--set", "fruit.rule=log-mean", "--set",
                 "abstain=0.9", "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Fruit level (log-mean of each fruit's photos" in result.output
    assert " fruits (" in result.output and "Check by hand below p = 0.90" in result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["fruit"]["rule"] == "log-mean" and "abstain" in metrics["fruit"]
    refused = run("train", *data, *COLOUR, "--set", "fruit.rule=vote", "--out", tmp_path / "r2")
    assert_clean_failure(refused, "Unknown fruit.rule 'vote'")
    assert not (tmp_path / "r2").exists()
    plain = run("train", synth / "train", "--labels", synth / "train.csv", *COLOUR,
                "--out", tmp_path / "photos")  # fmt: skip
    assert plain.exit_code == 0 and "Fruit level" not in plain.output
    assert "fruit" not in json.loads((tmp_path / "photos" / "metrics.json").read_text())


# -- predict, evaluate -------------------------------------------------------------------


def test_predict_with_groups_writes_fruits_beside_the_photos(synth, colour_run, tmp_path):
    out = tmp_path / "p.csv"
    result = run("predict", colour_run, synth / "train", "--groups", synth / "groups.csv",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    photos, fruits = read_csv(out), read_csv(tmp_path / "fruits.csv")
    groups = _groups(synth)
    assert [r["fruit"] for r in photos] == [groups[r["image_id"]] for r in photos]
    assert list(fruits[0]) == ["fruit", "photos", "grade", "p_A", "p_B", "p_C", "check", "reason"]
    assert sorted(r["fruit"] for r in fruits) == sorted({groups[r["image_id"]] for r in photos})
    predictor = open_predictor(colour_run)
    by_fruit = {r["fruit"]: r for r in fruits}
    for name, row in by_fruit.items():
        mine = [r for r in photos if r["fruit"] == name]
        assert int(row["photos"]) == len(mine)
        table = np.array([[float(r[f"p_{g}"]) for g in "ABC"] for r in mine])
        want, code = predictor.rule.grade_fruits(table, Fruits.from_ids([name] * len(mine)))
        np.testing.assert_allclose([float(row[f"p_{g}"]) for g in "ABC"], want[0], atol=2e-6)
        assert row["grade"] == "ABC"[code[0]]
    assert "Graded 36" not in result.output and " fruits (" in result.output


def test_the_python_api_grades_fruits_as_predict_does(synth, colour_run):
    predictor = open_predictor(colour_run)
    groups = _groups(synth)
    names = sorted(groups)[:8]
    images = load_images([synth / "train" / n for n in names], predictor.geometry).arrays
    fruits, proba, codes = predictor.grade_fruits(images, [groups[n] for n in names])
    assert proba.shape == (8, 3) and len(codes) == 8
    assert list(fruits.fruits.names) == list(dict.fromkeys(groups[n] for n in names))
    np.testing.assert_allclose(proba, predictor.grade(images)[0])
    with pytest.raises(SettingsError, match="3 fruit ids for 8 photos"):
        predictor.grade_fruits(images, ["a", "b", "c"])


def test_fruit_folders_and_the_fruit_grade_in_a_submission(synth, colour_run, tmp_path):
    shelf = tmp_path / "lot"
    groups = _groups(synth)
    for name, fruit in list(groups.items())[:12]:
        (shelf / fruit).mkdir(parents=True, exist_ok=True)
        (shelf / fruit / name).write_bytes((synth / "train" / name).read_bytes())
    out = tmp_path / "sub.csv"
    result = run("predict", colour_run, shelf, "--fruit-folders", "--fruit-grade",
                 "--format", "submission", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows, fruits = read_csv(out), {r["fruit"]: r for r in read_csv(tmp_path / "fruits.csv")}
    assert list(rows[0]) == ["image_id", "label"] and len(rows) == 12
    for row in rows:
        fruit = groups[Path(row["image_id"]).name]
        assert row["label"] == fruits[fruit]["grade"]


def test_bad_fruit_input_is_refused_before_any_work(synth, colour_run, tmp_path):
    photos = synth / "train"

    def predict(*extra, out="p.csv"):
        return run("predict", colour_run, photos, *extra, "--out", tmp_path / out)

    assert_clean_failure(predict("--fruit-grade"), "--fruit-grade needs", "--groups")
    assert_clean_failure(predict("--fruits-out", tmp_path / "f.csv"), "--fruits-out needs")
    rows = [["image_id", "group"], ["train/mango_00000.jpg", "f1"],
            ["train/mango_00000.jpg", "f2"]]  # fmt: skip
    two = tmp_path / "two.csv"
    two.write_text("\n".join(",".join(r) for r in rows) + "\n")
    assert_clean_failure(predict("--groups", two), "two different groups", "rows 2 and 3")
    empty = tmp_path / "empty.csv"
    empty.write_text("image_id,group\ntrain/mango_00000.jpg,\n")
    assert_clean_failure(predict("--groups", empty), "with no group", "2")
    outside = tmp_path / "outside.csv"
    outside.write_text("image_id,group\ntrain/mango_00000.jpg,f1\ntrain/gone.jpg,f1\n")
    done = predict("--groups", outside, out="ok.csv")
    assert done.exit_code == 0, done.output
    assert "name photos not in this dataset" in done.output and "gone.jpg" in done.output
    fruits = read_csv(tmp_path / "fruits.csv")
    assert len(fruits) == len(list(photos.iterdir()))  # one photo named, the rest their own
    assert fruits[0]["fruit"] == "f1" and fruits[0]["photos"] == "1"
    lot = tmp_path / "lot"
    (lot / "f1").mkdir(parents=True)
    (lot / "f2").mkdir()
    (lot / "f1" / "a.jpg").write_bytes((photos / "mango_00000.jpg").read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = run("predict", colour_run, lot, "--fruit-folders", "--out", elsewhere / "l.csv")
    assert_clean_failure(refused, "This fruit folder holds no photos", "f2")
    assert list(elsewhere.iterdir()) == []
    both = predict("--groups", outside, "--fruit-folders", out="b.csv")
    assert_clean_failure(both, "not both")


def test_evaluate_with_groups_scores_the_fruits_too(synth, colour_run, tmp_path):
    target = tmp_path / "ev.json"
    result = run("evaluate", colour_run, synth / "dev", "--labels", synth / "dev.csv",
                 "--groups", synth / "groups.csv", "--out", target)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Fruit level (mean of each fruit's photos" in result.output
    record = json.loads(target.read_text())
    fruits = read_csv(tmp_path / "ev.fruits.csv")
    assert record["fruit"]["n_photos"] == len(fruits) == record["fruit"]["headline"]["n"]
    assert record["fruit"]["bootstrap"]["unit"] == "photo"  # a fruit is the unit here
    assert sum(int(r["photos"]) for r in fruits) == record["n_photos"]


# -- one rule everywhere -----------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated_cnn(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cnn"
    return train_tiny(synth, out, *TINY_CNN, *NO_FLIPS, "--set", "calibration=temperature",
                      "--set", "fruit.rule=log-mean", "--set", "abstain=0.6")  # fmt: skip


def test_run_export_and_serve_grade_a_fruit_alike(synth, calibrated_cnn, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.evaluation.fruits import fruit_grades
    from mangograde.graders import ExportedGrader
    from mangograde.service import ServeOptions, create_app

    export = tmp_path / "export"
    assert run("export", calibrated_cnn, "--out", export).exit_code == 0
    predictor, exported = open_predictor(calibrated_cnn), ExportedGrader(export)
    run_record = open_run(calibrated_cnn)
    assert predictor.rule == exported.rule
    assert predictor.rule.fruit == "log-mean" and predictor.rule.abstain == 0.6
    assert predictor.rule.fruit_temperature == run_record.temperature(level="fruit") is not None

    names = sorted(p.name for p in (synth / "train").iterdir())[:6]
    fruit_ids = ["f1", "f1", "f1", "f2", "f2", "f3"]
    images = load_images([synth / "train" / n for n in names], predictor.geometry).arrays
    ours, photo_proba, _ = predictor.grade_fruits(images, fruit_ids)
    theirs, export_proba, _ = exported.grade_fruits(images, fruit_ids)
    np.testing.assert_allclose(export_proba, photo_proba, atol=1e-4)  # ONNX Runtime's kernels
    # the same photo probabilities give the same fruits through either grader's rule
    same = fruit_grades(exported.rule, photo_proba, Fruits.from_ids(fruit_ids))
    np.testing.assert_allclose(same.proba, ours.proba, atol=1e-6)
    np.testing.assert_allclose(theirs.proba, ours.proba, atol=1e-3)
    groups = tmp_path / "groups.csv"
    rows = zip(names, fruit_ids, strict=True)
    groups.write_text("image,group\n" + "".join(f"{n},{f}\n" for n, f in rows))
    for grader, name in ((calibrated_cnn, "run"), (export, "export")):
        done = run("predict", grader, *[synth / "train" / n for n in names], "--groups", groups,
                   "--out", tmp_path / "graded" / name / "p.csv")  # fmt: skip
        assert done.exit_code == 0, done.output
    by_run, by_export = (
        read_csv(tmp_path / "graded" / n / "fruits.csv") for n in ("run", "export")
    )
    assert [r["fruit"] for r in by_run] == [r["fruit"] for r in by_export] == ["f1", "f2", "f3"]
    for a, b in zip(by_run, by_export, strict=True):
        assert a["grade"] == b["grade"] and a["check"] == b["check"]
        np.testing.assert_allclose([float(a[f"p_{g}"]) for g in "ABC"],
                                   [float(b[f"p_{g}"]) for g in "ABC"], atol=1e-3)  # fmt: skip

    files = [("files", (n, (synth / "train" / n).read_bytes(), "image/jpeg")) for n in names]
    with TestClient(create_app(ServeOptions(run=calibrated_cnn))) as client:
        answer = client.post("/v1/grade", files=files, data={"fruit": fruit_ids})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        served = np.array([[body["results"][i]["probabilities"][g] for g in "ABC"]
                           for i in range(6)])  # fmt: skip
        np.testing.assert_allclose(served, photo_proba, atol=1e-6)
        got = {f["fruit"]: f for f in body["fruits"]}
        assert list(got) == ["f1", "f2", "f3"] and got["f1"]["photos"] == names[:3]
        for n, name in enumerate(ours.fruits.names):
            values = [got[name]["probabilities"][g] for g in "ABC"]
            np.testing.assert_allclose(values, ours.proba[n], atol=1e-6)
            assert got[name]["grade"] == "ABC"[ours.predicted[n]]
            assert got[name]["check"] == bool(ours.check[n])
        one = client.post("/v1/grade", files=files[:2], data={"fruit": "lone"}).json()
        assert [f["fruit"] for f in one["fruits"]] == ["lone"]
        assert len(one["fruits"][0]["photos"]) == 2
        bad = client.post("/v1/grade", files=files[:3], data={"fruit": ["a", "b"]})
        assert bad.status_code == 422 and "2 fruit values for 3 photos" in bad.text
        empty = client.post("/v1/grade", files=files[:1], data={"fruit": " "})
        assert empty.status_code == 422 and "empty fruit id" in empty.text
        plain = client.post("/v1/grade", files=files[:2]).json()
        assert "fruits" not in plain


def test_compare_shows_the_fruit_level_beside_the_photo_level(colour_run, tmp_path):
    result = run("compare", colour_run, "--mistakes", "0", "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    fruits = read_csv(colour_run / "fruits.csv")
    right = np.mean([r["true"] == r["predicted"] for r in fruits])
    assert f"{len(fruits)} fruits: accuracy {right:.3f}" in result.output
    html = (tmp_path / "r.html").read_text()
    assert "<h2>Fruit level</h2>" in html and "reliability of whole fruits" in html
    start = html.index("<h2>Fruit level</h2>")
    section = html[start : html.index("</section>", start)]
    assert section.count('class="cm"') == 1 and f"<td>{len(fruits)}</td>" in section


def test_explain_shows_every_view_of_one_fruit_under_its_grade(synth, colour_run, tmp_path):
    groups = _groups(synth)
    fruit = next(f for f in groups.values() if list(groups.values()).count(f) == 2)
    folder = tmp_path / "lot" / fruit
    folder.mkdir(parents=True)
    for name in (n for n, f in groups.items() if f == fruit):
        (folder / name).write_bytes((synth / "train" / name).read_bytes())
    out = tmp_path / "why.png"
    done = run("explain", colour_run, folder.parent, "--fruit-folders", "--samples", "10",
               "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    predictor = open_predictor(colour_run)
    images = load_images(sorted(folder.iterdir()), predictor.geometry).arrays
    fruits, _, _ = predictor.grade_fruits(images, [fruit, fruit])
    assert f"Fruit {fruit}: grade {'ABC'[fruits.predicted[0]]} (mean of 2 photos" in done.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    by_csv = run("explain", colour_run, synth / "train", "--groups", synth / "groups.csv",
                 "--fruit", fruit, "--samples", "10", "--out", tmp_path / "csv.png")  # fmt: skip
    assert by_csv.exit_code == 0 and f"Fruit {fruit}:" in by_csv.output
    several = run("explain", colour_run, synth / "train", "--groups", synth / "groups.csv",
                  "--out", tmp_path / "x.png")  # fmt: skip
    assert_clean_failure(several, "fruits (", "pick one with --fruit")
    alone = run("explain", colour_run, folder, "--fruit", fruit, "--out", tmp_path / "y.png")
    assert_clean_failure(alone, "--fruit names a fruit of the --groups CSV")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()
