"""predict, evaluate, explain and compare, on tiny runs trained once per module."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.explain import explain
from mangograde.images import load_images
from mangograde.models.bundle import load_bundle
from mangograde.runs import RunError, open_predictor, open_run

from .helpers import as_the_run_grades, write_photo
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv

TINY_RF = ["--model", "rf", "--set", "n_estimators=15", "--set", "features.size=24"]
TINY_CNN = ["--model", "cnn", "--set", "features.size=32", "--set", "epochs=2", "--set",
            "width=8", "--set", "threads=1", "--set", "batch_size=8"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthetic photos (train/ labelled, dev/ as new photos) and an rf and a cnn run."""
    from mangograde.data.synth import synthesize

    base = tmp_path_factory.mktemp("grading")
    root = synthesize(base / "s", n=48, size=48, seed=3)
    data = [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]
    runs = {}
    for name, options in (("rf", TINY_RF), ("cnn", TINY_CNN)):
        runs[name] = base / name
        result = run("train", *data, *options, "--cv", "2", "--out", runs[name])
        assert result.exit_code == 0, result.output
    return root, runs


def test_predict_writes_the_competition_format_with_probabilities(trained, tmp_path):
    root, runs = trained
    out = tmp_path / "preds.csv"
    result = run("predict", runs["rf"], root / "dev", "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert list(rows[0]) == ["image_id", "label", "p_A", "p_B", "p_C", "familiarity", "reason"]
    photos = sorted(p.name for p in (root / "dev").iterdir())
    assert sorted(r["image_id"] for r in rows) == photos
    for row in rows:
        proba = np.array([float(row[f"p_{g}"]) for g in "ABC"])
        assert proba.sum() == pytest.approx(1.0, abs=1e-5)
        best = "ABC"[int(np.argmax(proba))]  # the folds' mean decides
        assert row["label"] == ("check" if row["reason"] == "unfamiliar" else best)
        assert float(row["familiarity"]) >= 0
    assert f"Graded {len(photos)} photos" in result.output


def test_predict_with_one_fold_matches_that_bundle(trained, tmp_path):
    root, runs = trained
    photo = sorted((root / "dev").iterdir())[0]
    out = tmp_path / "one.csv"
    result = run("predict", runs["cnn"], photo, "--fold", "1", "--out", out)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(runs["cnn"] / "model" / "fold-1")
    geometry = bundle.manifest["preprocessing"]["geometry"]
    from mangograde.images import Resize

    image = load_images([photo], Resize(geometry["size"])).arrays
    expected = as_the_run_grades(runs["cnn"], bundle.model.predict_proba(image), 1)[0]
    row = read_csv(out)[0]
    assert row["image_id"] == photo.name
    np.testing.assert_allclose([float(row[f"p_{g}"]) for g in "ABC"], expected, atol=1e-5)


def test_predict_names_a_bad_photo_and_skips_it_on_request(trained, tmp_path):
    root, runs = trained
    folder = tmp_path / "new"
    write_photo(folder / "good.jpg", seed=1)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    result = run("predict", runs["rf"], folder, "--out", tmp_path / "p.csv")
    assert_clean_failure(result, "broken.jpg", "--skip-bad")
    result = run("predict", runs["rf"], folder, "--skip-bad", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.output
    assert [r["image_id"] for r in read_csv(tmp_path / "p.csv")] == ["good.jpg"]


def test_nothing_readable_is_an_error_even_with_skip_bad(trained, tmp_path):
    root, runs = trained
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "broken.jpg").write_bytes(b"not a jpeg")
    result = run("predict", runs["rf"], tmp_path / "new", "--skip-bad", "--out", tmp_path / "p.csv")
    assert_clean_failure(result, "Nothing to grade", "broken.jpg")
    (tmp_path / "new" / "labels.csv").write_text(
        "image_id,label\nbroken.jpg,A\n"
    )  # one grade: fine
    result = run(
        "evaluate", runs["rf"], tmp_path / "new", "--labels", tmp_path / "new" / "labels.csv",
        "--skip-bad", "--out", tmp_path / "e.json",
    )  # fmt: skip
    assert_clean_failure(result, "Nothing to grade", "broken.jpg")


def test_evaluate_warns_on_the_run_s_own_training_photos(trained, tmp_path):
    root, runs = trained
    result = run(
        "evaluate", runs["rf"], root / "train", "--labels", root / "train.csv",
        "--out", tmp_path / "e.json", "--bootstrap", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the folder this run was trained on" in result.output and "inflated" in result.output
    assert "inflated" in json.loads((tmp_path / "e.json").read_text())["notices"][0]
    result = run(
        "evaluate",
        runs["rf"],
        root / "dev",
        "--labels",
        root / "dev.csv",
        "--out",
        tmp_path / "e.csv",
    )
    assert_clean_failure(result, "give a .json file")


def test_predict_refuses_what_is_not_a_run_or_a_photo(trained, tmp_path):
    root, runs = trained
    assert_clean_failure(run("predict", tmp_path, root / "dev"), "no config.yaml")
    (tmp_path / "notes.txt").write_text("x")
    assert_clean_failure(run("predict", runs["rf"], tmp_path / "notes.txt"), "not a photo type")
    assert_clean_failure(run("predict", runs["rf"], tmp_path / "nowhere"), "does not exist")
    assert_clean_failure(run("predict", runs["rf"], root / "dev", "--fold", "5"), "--fold")


def test_evaluate_prints_and_saves_metrics_that_match_its_csv(trained, tmp_path):
    root, runs = trained
    out = tmp_path / "eval.json"
    result = run(
        "evaluate", runs["rf"], root / "dev", "--labels", root / "dev.csv",
        "--groups", root / "groups.csv", "--out", out, "--bootstrap", "300",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for phrase in ("Accuracy", "QWK", "A↔C errors", "Confusion"):
        assert phrase in result.output
    record = json.loads(out.read_text())
    rows = read_csv(out.with_suffix(".csv"))
    assert list(rows[0])[:3] == ["image_id", "label", "true"]
    hits = np.mean([r["true"] == r["label"] for r in rows])
    assert record["metrics"]["accuracy"]["value"] == pytest.approx(hits)
    assert record["n_photos"] == len(rows) == len(list((root / "dev").iterdir()))
    assert record["bootstrap"]["unit"] == "fruit" and record["bootstrap"]["replicates"] == 300
    assert np.sum(record["confusion"]) == len(rows)


def test_evaluate_matches_other_grade_names_by_rank_and_refuses_other_counts(trained, tmp_path):
    root, runs = trained
    photos = sorted((root / "dev").iterdir())[:3]
    for grade, photo in zip(["Extra_Class", "Class_I", "Class_II"], photos, strict=True):
        (tmp_path / "set" / grade).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "set" / grade / photo.name)
    result = run("evaluate", runs["rf"], tmp_path / "set", "--out", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    assert "Extra_Class = A, Class_I = B, Class_II = C" in result.output
    rows = read_csv(tmp_path / "e.csv")
    truth = {r["image_id"].split("/")[1]: r["true"] for r in rows}
    assert truth == {photos[0].name: "A", photos[1].name: "B", photos[2].name: "C"}
    for i, grade in enumerate(["Good", "Bad"]):
        write_photo(tmp_path / "two" / grade / f"x{i}.jpg", seed=i)
    result = run("evaluate", runs["rf"], tmp_path / "two", "--grades", "Good,Bad")
    assert_clean_failure(result, "The run's grades are A, B, C", "Good, Bad")
    # The run's own names in another order match by name (they used to be refused).
    for i, grade in enumerate("BAC"):
        write_photo(tmp_path / "other" / grade / f"x{i}.jpg", seed=i)
    result = run("evaluate", runs["rf"], tmp_path / "other", "--grades", "B,A,C",
                 "--out", tmp_path / "o.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    truth = {r["image_id"]: r["true"] for r in read_csv(tmp_path / "o.csv")}
    assert truth == {"B/x0.jpg": "B", "A/x1.jpg": "A", "C/x2.jpg": "C"}


@pytest.mark.parametrize(("model", "method"), [("rf", "lime"), ("cnn", "lime"), ("cnn", "gradcam")])
def test_explanations_mark_some_regions_but_not_all(trained, model, method):
    root, runs = trained
    predictor = open_predictor(runs[model], fold=0)
    photo = sorted((root / "dev").iterdir())[0]
    image = load_images([photo], predictor.geometry).arrays[0]
    found = explain(predictor, image, method, samples=60, seed=1)
    assert found.image.dtype == np.uint8 and found.mask.shape == found.image.shape[:2]
    assert 0 < found.mask.mean() < 1
    assert found.grade == found.predicted and found.predicted in "ABC"
    again = explain(predictor, image, method, samples=60, seed=1)
    np.testing.assert_array_equal(found.mask, again.mask)  # seeded: the same regions


def test_explain_command_writes_the_photo_beside_its_explanation(trained, tmp_path):
    root, runs = trained
    photo = sorted((root / "dev").iterdir())[0]
    out = tmp_path / "why.png"
    result = run("explain", runs["cnn"], photo, "--method", "gradcam", "--out", out)
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.width > 1.5 * picture.height  # two panels side by side
    assert "Predicted" in result.output


def test_gradcam_on_a_forest_says_to_use_lime(trained, tmp_path):
    root, runs = trained
    photo = sorted((root / "dev").iterdir())[0]
    result = run("explain", runs["rf"], photo, "--method", "gradcam", "--out", tmp_path / "x.png")
    assert_clean_failure(result, "is not a CNN", "--method lime")
    result = run("explain", runs["rf"], photo, "--method", "shap", "--out", tmp_path / "x.png")
    assert_clean_failure(result, "Unknown explanation method 'shap'", "lime, gradcam")


class _Collector(HTMLParser):
    """Tags, images, links and text of a page; every element must be closed in order."""

    VOID = {"img", "br", "meta", "link", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        for name in ("href", "src"):
            if name in attributes and tag != "img":
                self.links.append(attributes[name])

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_compare_writes_one_self_contained_report(trained, tmp_path):
    root, runs = trained
    out = tmp_path / "report.html"
    result = run(
        "compare", runs["rf"], runs["cnn"], "--out", out, "--samples", "30", "--study",
        "--method", "lime",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    parsed = _Collector()
    parsed.feed(page)
    parsed.close()
    assert parsed.open == []
    text = " ".join(parsed.text)
    assert parsed.tags.count("table") >= 4  # summary, study, a confusion matrix per run...
    for phrase in ("rf (rf-study)", "cnn (cnn-fast)", "Confusion matrices", "QWK", "Accuracy"):
        assert phrase in text
    assert "CNN learning curves" in text and "Beside the study" in text
    assert text.count("reliability (out-of-fold probabilities)") == 2  # one a run
    assert "84.1%" in text  # the study's CNN on its validation set
    assert len(parsed.images) >= 3
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not parsed.links and not re.search(r"(https?:)?//\w", without_images)
    assert "<script" not in page and "<link" not in page
    assert "explanation of" in page or "No mistakes" in text


def test_the_study_is_shown_only_beside_competition_data(trained, tmp_path):
    import yaml

    from mangograde.workflows.compare import is_competition_data

    root, runs = trained
    out = tmp_path / "r.html"
    result = run("compare", runs["rf"], "--out", out, "--mistakes", "0")
    assert result.exit_code == 0, result.output
    assert "Beside the study" not in out.read_text(encoding="utf-8")  # drawn photos
    assert not is_competition_data(open_run(runs["rf"]))
    copy = shutil.copytree(runs["rf"], tmp_path / "real")
    settings = yaml.safe_load((copy / "config.yaml").read_text())
    settings["data"]["synthetic"] = False  # as for photos in the competition's own layout
    (copy / "config.yaml").write_text(yaml.safe_dump(settings))
    assert is_competition_data(open_run(copy))
    settings["data"]["layout"] = "class-folders"
    (copy / "config.yaml").write_text(yaml.safe_dump(settings))
    assert not is_competition_data(open_run(copy))


def test_compare_names_a_missing_run(trained, tmp_path):
    out = tmp_path / "r.html"
    assert_clean_failure(run("compare", tmp_path / "missing", "--out", out), "not a folder")


def test_open_run_explains_an_unfinished_run(tmp_path):
    (tmp_path / "config.yaml").write_text("model: rf\n")
    with pytest.raises(RunError, match="holds no trained model"):
        open_predictor(tmp_path)


def test_report_holds_the_search_plots_a_run_folder_has(trained, tmp_path):
    from PIL import Image

    from mangograde.report.html import render_report
    from mangograde.workflows.compare import compare_runs, confident_mistakes

    root, runs = trained
    copy = shutil.copytree(runs["rf"], tmp_path / "rf")
    (copy / "search").mkdir()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(copy / "search" / "search.png")
    comparison = compare_runs([copy], mistakes=2, samples=20, n_boot=100, progress=False)
    page = render_report(comparison, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Searches and sweeps" in page and "search/search.png" in page
    # the gallery: wrong grades only, most confident first, each explained from its photo
    mistakes = comparison.runs[0].mistakes
    held = open_run(copy).held_out
    assert 0 < len(mistakes) <= 2
    assert all(m.true != m.predicted for m in mistakes)
    assert [m.confidence for m in mistakes] == sorted(
        (m.confidence for m in mistakes), reverse=True
    )
    given = held.proba[np.arange(len(held.true)), held.predicted][held.predicted != held.true]
    assert mistakes[0].confidence == pytest.approx(given.max(), abs=1e-6)
    assert all(m.figure and m.figure.startswith(b"\x89PNG") for m in mistakes)
    assert confident_mistakes(open_run(copy), 0) == []


def test_compare_explains_mistakes_with_the_chosen_method(trained):
    from mangograde.workflows.compare import compare_runs

    root, runs = trained
    forced = compare_runs([runs["rf"]], mistakes=1, n_boot=50, progress=False, method="gradcam")
    mistake = forced.runs[0].mistakes[0]
    assert mistake.figure is None and "is not a CNN" in mistake.note
    with pytest.raises(SettingsError, match="auto, lime, gradcam"):
        compare_runs([runs["rf"]], method="shap")


def test_one_network_grades_each_photo_once(trained, monkeypatch):
    """A CNN's own rule is the most likely grade: the grader takes it from the
    probabilities instead of running the network a second time (an rf's runs its own)."""
    from mangograde.models.cnn_estimator import CNNClassifier

    root, runs = trained
    predictor = open_predictor(runs["cnn"], fold=0)
    photos = load_images(sorted((root / "dev").iterdir()), predictor.geometry).arrays
    expected = predictor.models[0].predict(photos)

    def twice(*_):
        raise AssertionError("the network ran a second time")

    monkeypatch.setattr(CNNClassifier, "predict", twice)
    proba, codes = predictor.grade(photos)
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(codes, proba.argmax(1))
    forest = open_predictor(runs["rf"], fold=0)
    assert not getattr(forest.models[0], "predicts_most_likely", False)
