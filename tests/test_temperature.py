"""calibration=temperature: a temperature fit only on held-out fruits' probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mangograde.evaluation.temperature import apply_temperature, cross_fit, fit_temperature

from .service_helpers import train_tiny
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv


def overconfident(n: int = 4000, temperature: float = 2.0, seed: int = 0):
    """Probabilities twice as sharp as the truth they were drawn from."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, 3))
    honest = apply_temperature(np.exp(logits), 1.0)
    true = np.array([rng.choice(3, p=p) for p in honest])
    return apply_temperature(honest, 1 / temperature), true


def test_the_fitted_temperature_undoes_overconfidence_and_keeps_the_grades():
    proba, true = overconfident()
    found = fit_temperature(proba, true)
    assert found == pytest.approx(2.0, rel=0.1)
    assert (apply_temperature(proba, found).argmax(1) == proba.argmax(1)).all()
    np.testing.assert_allclose(apply_temperature(proba, 1.0), proba, atol=1e-9)


def test_each_fold_is_calibrated_on_the_other_folds_only():
    proba, true = overconfident(3000)
    folds = np.repeat([0, 1, 2], 1000)
    proba[folds == 0] = np.eye(3)[(true[folds == 0] + 1) % 3] * 0.98 + 0.01  # all wrong
    scaled, per_fold, overall = cross_fit(proba, true, folds)
    assert per_fold[0] == pytest.approx(fit_temperature(proba[folds != 0], true[folds != 0]))
    assert per_fold[0] == pytest.approx(2.0, rel=0.15)  # fold 0's own photos did not count
    assert per_fold[1] > 2.5 and overall > 2.5  # they did count for the others
    np.testing.assert_allclose(
        scaled[folds == 0], apply_temperature(proba[folds == 0], per_fold[0])
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("temp") / "s", n=36, size=48, seed=2)


def test_a_calibrated_run_grades_new_photos_with_its_temperature(synth, tmp_path):
    recipe = ["--model", "svm", "--cv", "2"]
    plain = train_tiny(synth, tmp_path / "plain", *recipe, "--set", "calibration=none")
    scaled = train_tiny(synth, tmp_path / "scaled", *recipe, "--set", "calibration=temperature")
    record = json.loads((scaled / "calibration.json").read_text())
    assert record["method"] == "temperature" and set(record["per_fold"]) == {"0", "1"}
    assert 0 <= record["ece_after"] <= 1 and 0 <= record["ece_before"] <= 1
    grades = ["A", "B", "C"]
    for out in (plain, scaled):
        done = run("predict", out, synth / "dev", "--out", tmp_path / f"{out.name}.csv")
        assert done.exit_code == 0, done.output
    before, after = (
        np.array([[float(r[f"p_{g}"]) for g in grades] for r in read_csv(tmp_path / name)])
        for name in ("plain.csv", "scaled.csv")
    )
    np.testing.assert_allclose(after, apply_temperature(before, record["temperature"]), atol=2e-5)
    held = read_csv(scaled / "predictions.csv")
    assert [r["predicted"] for r in held] == [
        r["predicted"] for r in read_csv(plain / "predictions.csv")
    ]


def test_temperature_needs_every_fold(synth, tmp_path):
    data = [synth / "train", "--labels", synth / "train.csv"]
    refused = run("train", *data, "--model", "svm", "--val-fraction", "0.3",
                  "--set", "calibration=temperature", "--out", tmp_path / "r")  # fmt: skip
    assert_clean_failure(refused, "train all folds of --cv K")
    assert_clean_failure(
        run("train", *data, "--model", "svm", "--cv", "2", "--set", "calibration=platt",
            "--out", tmp_path / "r"), "Unknown calibration 'platt'")  # fmt: skip
