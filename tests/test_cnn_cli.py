"""train --model cnn, --folds, --resume and ablate through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mangograde.images import ImageCache, Resize, load_images
from mangograde.models.bundle import load_bundle
from mangograde.models.cnn_estimator import CNNClassifier

from .helpers import as_the_run_grades
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv

TINY_CNN = ["--set", "features.size=32", "--set", "epochs=2", "--set", "width=8",
            "--set", "threads=1", "--set", "batch_size=8"]  # fmt: skip


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("cnn") / "s", n=36, size=48, seed=2)
    return [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]


def probabilities(out):
    rows = read_csv(out / "predictions.csv")
    return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


def test_train_cnn_writes_curves_and_a_bundle_that_regrades(synth_data, tmp_path):
    out = tmp_path / "run"
    result = run("train", *synth_data, "--model", "cnn", "--cv", "2", *TINY_CNN, "--out", out)
    assert result.exit_code == 0, result.output
    assert "augmentation and batches took" in result.output
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings["preset"] == "cnn-fast" and settings["params"]["architecture"] == "fast-cnn"
    history = read_csv(out / "history.csv")
    assert [(r["fold"], r["epoch"]) for r in history] == [
        ("0", "1"),
        ("0", "2"),
        ("1", "1"),
        ("1", "2"),
    ]
    assert all(0 <= float(r["val_acc"]) <= 1 for r in history)
    assert (out / "curves.png").stat().st_size > 1000
    assert not (out / "checkpoints").exists()  # only kept while a run can still resume
    metrics = json.loads((out / "metrics.json").read_text())
    timing = json.loads((out / "timing.json").read_text())
    assert metrics["epochs_run"] == 2 and 0 < timing["data_share"] < 1
    rows = read_csv(out / "predictions.csv")
    held = [r for r in rows if r["fold"] == "1"]
    bundle = load_bundle(out / "model" / "fold-1")
    size = bundle.manifest["preprocessing"]["geometry"]["size"]
    assert size == 37  # 32 * 256 / 224: the study's resize before its centre crop
    photos = load_images([synth_data[0] / r["image"] for r in held], Resize(size), ImageCache())
    expected = np.array([[float(r[f"p_{g}"]) for g in metrics["grades"]] for r in held])
    graded = as_the_run_grades(out, bundle.model.predict_proba(photos.arrays), 1)
    np.testing.assert_allclose(graded, expected, atol=1e-5)


def test_folds_blend_several_cnns(synth_data, tmp_path):
    out = tmp_path / "run"
    result = run("train", *synth_data, "--model", "cnn", "--val-fraction", "0.3",
                 "--folds", "2", *TINY_CNN, "--set", "epochs=1", "--set", "blend.voting=mean",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    history = read_csv(out / "history.csv")
    assert sorted({r["member"] for r in history}) == ["0", "1"]
    model = load_bundle(out / "model").model
    assert len(model.estimators_) == 2 and model.voting == "mean"


def _whole_and_killed(args, tmp_path, monkeypatch):
    """A run trained whole, and the same run killed one epoch into fold 1."""
    whole = tmp_path / "whole"
    assert run("train", *args, "--out", whole).exit_code == 0
    original, saves = CNNClassifier._checkpoint, []

    def killed_in_fold_1(self, *a, **k):
        original(self, *a, **k)
        saves.append(1)
        if len(saves) == 3:  # fold 0 done (2 epochs), fold 1 one epoch in
            raise KeyboardInterrupt

    monkeypatch.setattr(CNNClassifier, "_checkpoint", killed_in_fold_1)
    killed = tmp_path / "killed"
    assert run("train", *args, "--out", killed).exit_code == 130  # as after Ctrl-C
    monkeypatch.setattr(CNNClassifier, "_checkpoint", original)
    return whole, killed


def test_resume_finishes_a_killed_run_as_if_never_stopped(synth_data, tmp_path, monkeypatch):
    args = [*synth_data, "--model", "cnn", "--cv", "2", *TINY_CNN]
    whole, killed = _whole_and_killed(args, tmp_path, monkeypatch)
    stage = tmp_path / ".killed.partial"  # a killed run waits beside its --out
    assert (stage / "checkpoints" / "fold-1" / "checkpoint.pt").is_file()
    assert not killed.exists()
    refused = run("train", *args, "--out", killed)
    assert_clean_failure(refused, "--resume")
    changed = run("train", *args, "--set", "lr=0.5", "--resume", "--out", killed)
    assert_clean_failure(changed, "settings differ in params")
    resumed = run("train", *args, "--resume", "--out", killed)
    assert resumed.exit_code == 0, resumed.output
    assert not stage.exists()
    np.testing.assert_array_equal(probabilities(killed), probabilities(whole))
    assert_clean_failure(run("train", *args, "--resume", "--out", killed), "is finished")


def _as_an_older_version_wrote_it(stage, params=("head", "precision"), features=("crop",)):
    """Drop settings added inside sections since, from the stage's config.yaml and from
    every checkpoint, as a run killed under an older version has them."""
    import torch

    config = stage / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    for key in params:
        settings["params"].pop(key)
    for key in features:
        settings["features"].pop(key)
    config.write_text(yaml.safe_dump(settings))
    for path in stage.glob("checkpoints/*/checkpoint.pt"):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        written = json.loads(saved["params"])
        saved["params"] = json.dumps({k: v for k, v in written.items() if k not in params})
        torch.save(saved, path)


def test_a_run_killed_under_an_older_version_resumes_without_its_new_settings(
    synth_data, tmp_path, monkeypatch
):
    args = [*synth_data, "--model", "cnn", "--cv", "2", *TINY_CNN]
    whole, killed = _whole_and_killed(args, tmp_path, monkeypatch)
    _as_an_older_version_wrote_it(tmp_path / ".killed.partial")
    assert_clean_failure(
        run("train", *args, "--set", "head=cumulative", "--resume", "--out", killed),
        "settings differ in params",
    )
    resumed = run("train", *args, "--resume", "--out", killed)
    assert resumed.exit_code == 0, resumed.output
    np.testing.assert_array_equal(probabilities(killed), probabilities(whole))


def test_early_stopping_on_the_scored_photos_is_refused(synth_data, tmp_path):
    result = run("train", *synth_data, "--model", "cnn", "--cv", "2", *TINY_CNN,
                 "--set", "patience=2", "--out", tmp_path / "run")  # fmt: skip
    assert_clean_failure(result, "validation_fraction")


def test_ablate_compares_variants_on_one_split(synth_data, tmp_path):
    out = tmp_path / "ablation"
    result = run("ablate", *synth_data, "--model", "cnn", "--val-fraction", "0.3", *TINY_CNN,
                 "--set", "architecture=study-cnn", "--set", "epochs=1",
                 "--vary", "order=act-bn,bn-act", "--vary", "optimizer=sgd,adam+lr=0.001",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "ablation.csv")
    assert [(r["factor"], r["value"]) for r in rows] == [
        ("order", "act-bn"),
        ("order", "bn-act"),
        ("optimizer", "sgd"),
        ("optimizer", "adam+lr=0.001"),
    ]
    assert all(0 <= float(r["accuracy"]) <= 1 and int(r["parameters"]) > 0 for r in rows)
    assert "| order | bn-act |" in (out / "ablation.md").read_text()
    assert len({r["member"] for r in read_csv(out / "history.csv")}) == 4


def test_ablate_names_a_bad_factor(synth_data, tmp_path):
    result = run("ablate", *synth_data, "--model", "cnn", "--val-fraction", "0.3", *TINY_CNN,
                 "--vary", "colour_space=lab", "--out", tmp_path / "a")  # fmt: skip
    assert_clean_failure(result, "colour_space")
    result = run("ablate", *synth_data, "--model", "cnn", "--vary", "order", "--out", tmp_path)
    assert_clean_failure(result, "key=value1,value2")


def test_presets_list_the_cnn_recipes():
    result = run("presets")
    assert "cnn-study" in result.output and "cnn-fast" in result.output
    shown = yaml.safe_load(run("presets", "show", "cnn-study").output)
    assert shown["features"]["size"] == 224 and shown["params"]["optimizer"] == "sgd"
