"""train, presets, search, sweep and tsne through the command line, on tiny synthetic data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from mangograde.images import ImageCache, Resize, load_images
from mangograde.models.bundle import load_bundle

from .helpers import as_the_run_grades
from .test_cli import assert_clean_failure, run

TINY_RF = ["--set", "features.size=16", "--set", "n_estimators=12"]
TINY_SVM = ["--set", "features.size=32", "--set", "n_components=8"]
TINY_COLOUR = ["--set", "features.size=32", "--set", "n_estimators=10"]


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("models") / "s", n=48, size=48, seed=1)
    return [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("model", "tiny"), [("rf", TINY_RF), ("svm", TINY_SVM), ("colour", TINY_COLOUR)]
)
def test_train_writes_a_complete_run_folder(synth_data, tmp_path, model, tiny):
    out = tmp_path / "run"
    result = run("train", *synth_data, "--model", model, "--cv", "2", *tiny, "--out", out)
    assert result.exit_code == 0, result.output
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings["model"] == model and settings["split"]["cv"] == 2
    assert settings["data"]["groups"].endswith("groups.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == metrics["n_images"] == metrics["n_held_out"]
    assert set(rows[0]) >= {"image", "group", "fold", "true", "predicted"}
    assert [k for k in rows[0] if k.startswith("p_")] == [f"p_{g}" for g in metrics["grades"]]
    folds = np.array([int(r["fold"]) for r in rows])
    correct = np.array([r["true"] == r["predicted"] for r in rows])
    for fold, accuracy in enumerate(metrics["accuracy_folds"]):
        assert accuracy == pytest.approx(correct[folds == fold].mean())
    assert metrics["accuracy"] == pytest.approx(correct.mean())  # all held-out photos
    groups_per_fold = {}
    for r in rows:  # a fruit never appears in two folds
        assert groups_per_fold.setdefault(r["group"], r["fold"]) == r["fold"]
    timing = json.loads((out / "timing.json").read_text())
    assert {"decode_s", "fit_s", "predict_s", "predict_per_photo_ms"} <= set(timing)
    # A fold's bundle regrades its held-out photos exactly as the run did.
    bundle = load_bundle(out / "model" / "fold-1")
    held = [r for r in rows if r["fold"] == "1"]
    paths = [synth_data[0] / r["image"] for r in held]
    size = bundle.manifest["preprocessing"]["geometry"]["size"]
    photos = load_images(paths, Resize(size), ImageCache()).arrays
    proba = as_the_run_grades(out, bundle.model.predict_proba(photos), 1)
    expected = np.array([[float(r[f"p_{g}"]) for g in metrics["grades"]] for r in held])
    np.testing.assert_allclose(proba, expected, atol=1e-5)


def test_train_with_a_validation_fraction_saves_one_bundle(synth_data, tmp_path):
    out = tmp_path / "run"
    result = run("train", *synth_data, "--model", "rf", "--val-fraction", "0.25", *TINY_RF,
                 "--set", "oob_score=true", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "model" / "bundle.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_folds"] == 1 and 0 < metrics["n_held_out"] < metrics["n_images"]
    assert "honest" in result.output and 0 <= metrics["oob_honest"] <= 1


def test_train_refuses_bad_settings_before_decoding(synth_data, tmp_path):
    result = run("train", *synth_data, "--model", "rf", "--set", "params.n_trees=3",
                 "--out", tmp_path / "run")  # fmt: skip
    assert_clean_failure(result, "n_trees", "Valid here:")
    assert not (tmp_path / "run").exists()


def test_train_will_not_overwrite_a_run_unless_asked(synth_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", *synth_data, "--model", "rf", "--cv", "2", *TINY_RF, "--out", out]
    assert run(*args).exit_code == 0
    assert_clean_failure(run(*args), "--overwrite")
    (out / "model" / "fold-1" / "mine.txt").write_text("mine")  # not the run's: it stays
    assert run(*args, "--cv", "3", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == ["fold-0", "fold-1", "fold-2"]
    assert (out / "model" / "fold-1" / "mine.txt").read_text() == "mine"
    assert "cv: 3" in (out / "config.yaml").read_text()


def test_overwrite_never_empties_a_folder_that_holds_no_run(synth_data, tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    result = run("train", *synth_data, "--model", "rf", *TINY_RF, "--out", tmp_path,
                 "--overwrite")  # fmt: skip
    assert_clean_failure(result, "no run marked by mangograde")
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_train_lists_skipped_photos_in_the_run(synth_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_data[0], data)
    broken = sorted(data.glob("*.jpg"))[0]
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "run"
    args = [data, *synth_data[1:], "--model", "rf", "--cv", "2", *TINY_RF, "--out", out]
    assert_clean_failure(run("train", *args), broken.name, "--skip-bad")
    result = run("train", *args, "--skip-bad", "--overwrite")
    assert result.exit_code == 0, result.output
    skipped = read_csv(out / "skipped.csv")
    assert [row["path"].endswith(broken.name) for row in skipped] == [True]
    assert json.loads((out / "metrics.json").read_text())["n_skipped"] == 1


def test_presets_list_and_show():
    listed = run("presets")
    assert listed.exit_code == 0
    assert all(name in listed.output for name in ("svm-study", "rf-study", "svm-raw"))
    shown = run("presets", "show", "svm-study")
    assert yaml.safe_load(shown.output)["params"]["C"] == 1.5
    assert_clean_failure(run("presets", "show", "nope"), "Valid presets")


def test_search_writes_a_table_and_a_heatmap(synth_data, tmp_path):
    out = tmp_path / "search"
    result = run("search", *synth_data, "--cv", "2", "--set", "features.size=32",
                 "--set", "search.C=[1, 10]", "--set", "search.gamma=[scale, 0.0001]",
                 "--set", "search.n_components=[4, 8]", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "search.csv")
    assert len(rows) == 2 * 2 * 2
    assert {r["n_components"] for r in rows} == {"4", "8"}
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert (out / "search.png").read_bytes().startswith(b"\x89PNG")
    assert "Best:" in result.output


def test_sweep_writes_cv_and_both_oob_scores(synth_data, tmp_path):
    out = tmp_path / "sweep"
    result = run("sweep", *synth_data, "--cv", "2", *TINY_RF, "--param", "max_features",
                 "--values", "sqrt,0.05", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "sweep.csv")
    assert [r["value"] for r in rows] == ["sqrt", "0.05"]
    for r in rows:
        assert float(r["oob_raw"]) >= float(r["oob_honest"]) - 0.15
        assert 0 <= float(r["cv_accuracy"]) <= 1
    assert (out / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert_clean_failure(
        run("sweep", *synth_data, "--param", "colour", "--values", "1", "--out", out / "again"),
        "Sweepable: n_estimators",
    )


@pytest.mark.parametrize("dims", [[], ["--3d"]])
def test_tsne_draws_a_png_and_saves_coordinates(synth_data, tmp_path, dims):
    png = tmp_path / "tsne.png"
    result = run("tsne", *synth_data, "--size", "16", "--pca", "10", *dims, "--out", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG")
    rows = read_csv(png.with_suffix(".csv"))
    assert len(rows) == 48 - len(list((synth_data[0].parent / "dev").glob("*.jpg")))
    assert len([k for k in rows[0] if k.startswith("t")]) == (3 if dims else 2)
