"""Exact copies of a photo are kept in one fruit group, and a model that grades every
photo the same is flagged loudly in train, evaluate and compare."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from mangograde.cli import app

from .helpers import write_photo


def _run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_train_groups_exact_copies_and_says_so(tmp_path):
    root = tmp_path / "graded"
    for g, grade in enumerate(["A", "B", "C"]):
        for i in range(6):
            write_photo(root / grade / f"{grade}{i}.png", seed=10 * g + i, size=(24, 24))
    shutil.copy(root / "A" / "A0.png", root / "A" / "A0-again.png")
    out = tmp_path / "run"
    result = _run("train", root, "--grades", "A,B,C", "--model", "rf", "--cv", "3",
                  "--set", "n_estimators=5", "--set", "features.size=8",
                  "--set", "expand=none", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 photos are exact copies" in result.output
    assert "A/A0-again.png = A/A0.png" in result.output
    rows = {r["image"]: r for r in _rows(out / "predictions.csv")}
    assert rows["A/A0.png"]["group"] == rows["A/A0-again.png"]["group"] != ""
    assert rows["A/A0.png"]["fold"] == rows["A/A0-again.png"]["fold"]
    assert rows["A/A1.png"]["group"] != rows["A/A0.png"]["group"]


def test_a_run_that_grades_everything_the_same_is_flagged(tmp_path):
    data = tmp_path / "data"
    assert _run("synth", data, "--n", "40", "--size", "32").exit_code == 0
    out = tmp_path / "run"
    result = _run("train", data / "train", "--labels", data / "train.csv", "--model", "svm",
                  "--cv", "2", "--set", "features.size=16", "--set", "n_components=4",
                  "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    # Make the run's recorded grades collapse, as a broken model's would.
    rows = _rows(out / "predictions.csv")
    for row in rows:
        row["predicted"] = "B"
    with (out / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = tmp_path / "report.html"
    result = _run("compare", out, "--out", report, "--mistakes", "0", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "graded B" in result.output
    assert 'class="warning"' in report.read_text(encoding="utf-8")


def test_evaluate_flags_a_set_graded_all_one_grade(tmp_path, monkeypatch):
    data = tmp_path / "data"
    assert _run("synth", data, "--n", "40", "--size", "32").exit_code == 0
    out = tmp_path / "run"
    assert _run("train", data / "train", "--labels", data / "train.csv", "--model", "rf",
                "--val-fraction", "0.3", "--set", "n_estimators=3", "--set", "features.size=8",
                "--set", "expand=none", "--out", out).exit_code == 0  # fmt: skip
    from mangograde.runs import predictor

    def all_b(self, images):  # a collapsed model
        proba = [[0.1, 0.8, 0.1]] * len(images)
        import numpy as np

        return np.array(proba), np.ones(len(images), dtype=int)

    monkeypatch.setattr(predictor.RunPredictor, "grade", all_b)
    monkeypatch.setattr(predictor.RunPredictor, "grade_and_score",
                        lambda self, images: (*all_b(self, images), None))  # fmt: skip
    target = tmp_path / "eval.json"
    result = _run("evaluate", out, data / "dev", "--labels", data / "dev.csv", "--out", target,
                  "--bootstrap", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "collapsed to one grade" in result.output
    assert json.loads(target.read_text(encoding="utf-8"))["warnings"]
