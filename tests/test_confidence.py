"""Calibration (ECE, reliability bins) and accuracy against coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mangograde.evaluation import evaluate
from mangograde.evaluation.confidence import calibration, coverage

from .service_helpers import train_tiny
from .test_cli import run


def three_grades(top: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Probabilities whose top value is ``top``, on grade ``predicted``."""
    proba = np.tile(((1 - top) / 2)[:, None], (1, 3))
    proba[np.arange(len(top)), predicted] = top
    return proba


def test_a_calibrated_grader_has_no_calibration_error_and_an_overconfident_one_does():
    rng = np.random.default_rng(0)
    n = 10_000
    predicted = rng.integers(0, 3, n)
    proba = three_grades(np.full(n, 0.8), predicted)
    truth = np.where(rng.random(n) < 0.8, predicted, (predicted + 1) % 3)
    assert calibration(truth, proba)["ece"] == pytest.approx(0.0, abs=0.01)
    sure = three_grades(np.full(n, 0.99), predicted)
    half = np.where(rng.random(n) < 0.5, predicted, (predicted + 1) % 3)
    record = calibration(half, sure)
    assert record["ece"] == pytest.approx(0.49, abs=0.02)
    assert [b["n"] for b in record["bins"]] == [n] and record["bins"][0]["low"] == 14 / 15


def test_coverage_finds_the_share_graded_at_99_percent():
    n = 100
    top = np.linspace(0.99, 0.40, n)  # most confident first
    predicted = np.zeros(n, dtype=int)
    truth = np.where(np.arange(n) < 90, 0, 1)  # the 10 least confident are wrong
    record = coverage(truth, predicted, three_grades(top, predicted))
    reach = record["reaches_target"]
    assert reach["coverage"] == pytest.approx(0.90) and reach["accuracy"] == 1.0
    assert reach["threshold"] == pytest.approx(top[89])
    assert record["accuracy_at_90"] == 1.0
    assert record["curve"][-1] == {"coverage": 1.0, "accuracy": 0.9, "threshold": top[-1]}
    wrong_first = coverage(1 - truth, predicted, three_grades(top, predicted))
    assert wrong_first["reaches_target"] is None


def test_evaluate_records_and_prints_them(tmp_path):
    from mangograde.data.synth import synthesize

    record = evaluate([0, 1, 2, 2], [0, 1, 2, 1], ["A", "B", "C"], np.eye(3)[[0, 1, 2, 1]])
    assert record["calibration"]["ece"] == pytest.approx(0.25)
    assert record["coverage"]["reaches_target"] is None
    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path / "svm", "--model", "svm", "--cv", "2")
    done = run("evaluate", out, root / "dev", "--labels", root / "dev.csv", "--out",
               tmp_path / "e.json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Calibration error" in done.output and "(ECE; 0 is perfect)" in done.output
    saved = json.loads((tmp_path / "e.json").read_text())
    assert 0 <= saved["calibration"]["ece"] <= 1 and saved["coverage"]["curve"]
    assert (tmp_path / "e.reliability.png").stat().st_size > 0


def test_predict_abstain_leaves_unsure_photos_to_check_by_hand(tmp_path):
    from mangograde.data.synth import synthesize

    from .test_cli_models import read_csv

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path / "svm", "--model", "svm", "--cv", "2")
    assert run("predict", out, root / "dev", "--out", tmp_path / "all.csv").exit_code == 0
    tops = sorted(max(float(v) for k, v in r.items() if k.startswith("p_"))
                  for r in read_csv(tmp_path / "all.csv"))  # fmt: skip
    threshold = f"{(tops[len(tops) // 2 - 1] + tops[len(tops) // 2]) / 2:.6f}"
    done = run("predict", out, root / "dev", "--abstain", threshold, "--out", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    rows = read_csv(tmp_path / "p.csv")
    for row in rows:
        top = max(float(v) for k, v in row.items() if k.startswith("p_"))
        assert (row["label"] == "check") == (top < float(threshold))
    assert sum(r["label"] == "check" for r in rows) == len(rows) // 2
    assert f"check {len(rows) // 2}" in done.output


def _tops(rows: list[dict[str, str]]) -> list[float]:
    return [max(float(v) for k, v in r.items() if k.startswith("p_")) for r in rows]


def test_the_runs_abstain_setting_is_followed_by_train_predict_evaluate_export_and_serve(
    tmp_path,
):
    from fastapi.testclient import TestClient

    from mangograde.data.synth import synthesize
    from mangograde.service import ServeOptions, create_app

    from .service_helpers import NO_FLIPS, TINY_CNN
    from .test_cli_models import read_csv

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    # top probabilities 0.34 to 0.59, as trained (uncalibrated: a temperature fit on 36
    # photos would flatten them all below the threshold)
    spread = ["--set", "epochs=8", "--set", "lr=0.01", "--set", "calibration=none", *NO_FLIPS]
    out = train_tiny(root, tmp_path / "cnn", *TINY_CNN, *spread, "--set", "abstain=0.45")
    held = read_csv(out / "predictions.csv")
    unsure = [top < 0.45 for top in _tops(held)]
    assert 0 < sum(unsure) < len(held)  # the check below can fail both ways
    record = json.loads((out / "metrics.json").read_text())["abstain"]
    right = [r["true"] == r["predicted"] for r, u in zip(held, unsure, strict=True) if not u]
    assert record["n_check"] == sum(unsure) and record["threshold"] == 0.45
    assert record["accuracy"] == pytest.approx(np.mean(right))
    # predict follows the run's setting; --abstain 0 grades every photo.
    exported = tmp_path / "onnx"
    assert run("export", out, "--format", "onnx", "--out", exported).exit_code == 0
    assert json.loads((exported / "grader.json").read_text())["abstain"] == 0.45
    for grader in (out, exported):
        done = run("predict", grader, root / "dev", "--out", tmp_path / f"{grader.name}.csv")
        assert done.exit_code == 0, done.output
        rows = read_csv(tmp_path / f"{grader.name}.csv")
        labels = [r["label"] == "check" for r in rows]
        unsure = [t < 0.45 for t in _tops(rows)]
        odd = [r["reason"] == "unfamiliar" for r in rows]  # a reason of its own, first
        assert labels == [u or o for u, o in zip(unsure, odd, strict=True)]
        assert [r["reason"] == "unsure" for r in rows] == [
            u and not o for u, o in zip(unsure, odd, strict=True)]  # fmt: skip
        assert 0 < sum(unsure) < len(labels)
    done = run("predict", out, root / "dev", "--abstain", "0", "--out", tmp_path / "all.csv")
    assert "unsure" not in {r["reason"] for r in read_csv(tmp_path / "all.csv")}
    done = run("evaluate", out, root / "dev", "--labels", root / "dev.csv", "--out",
               tmp_path / "e.json")  # fmt: skip
    assert "Check by hand below p = 0.45" in done.output
    assert json.loads((tmp_path / "e.json").read_text())["abstain"]["n_check"] == sum(
        t < 0.45 for t in _tops(read_csv(tmp_path / "cnn.csv"))
    )
    photos = sorted((root / "dev").iterdir())
    with TestClient(create_app(ServeOptions(run=out))) as client:
        files = [("files", (p.name, p.read_bytes())) for p in photos]
        answer = client.post("/v1/grade", files=files).json()["results"]
    checks = [a["check"] for a in answer]
    unsure = [max(a["probabilities"].values()) < 0.45 for a in answer]
    assert checks == [u or a["unfamiliar"] for u, a in zip(unsure, answer, strict=True)]
    plain = [u and not a["unfamiliar"] for u, a in zip(unsure, answer, strict=True)]
    assert [a.get("reason") == "unsure" for a in answer] == plain and any(unsure)


def test_bad_abstain_settings_are_refused(tmp_path, class_folders):
    done = run("train", class_folders, "--model", "svm", "--set", "abstain=high",
               "--out", tmp_path / "r")  # fmt: skip
    assert done.exit_code != 0 and "abstain must be a probability from 0 to 1" in done.output
