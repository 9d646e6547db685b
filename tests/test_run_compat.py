"""Run folders written by mangograde 0.1.0 before the run folder had a format version
(tests/fixtures/runs-v0.1: svm and rf with --cv 2, a small cnn-fast with a hold-out,
trained on ``synth --n 60 --size 64 --seed 0``) still open with predict, evaluate and
compare, and grade their held-out photos exactly as they did when they were written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "runs-v0.1"
RUNS = ("svm", "rf", "cnn")


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixture-data")
    result = CliRunner().invoke(
        app, ["synth", str(root), "--n", "60", "--size", "64", "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def old_runs(tmp_path) -> Path:
    copy = tmp_path / "runs"
    shutil.copytree(FIXTURE, copy)
    return copy


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", RUNS)
def test_old_run_grades_its_held_out_photos_as_it_recorded(name, old_runs, fixture_data):
    run = old_runs / name
    held = _rows(run / "predictions.csv")
    for fold in sorted({r["fold"] for r in held}):
        photos = [fixture_data / "train" / r["image"] for r in held if r["fold"] == fold]
        out = run.parent / f"{name}-{fold}.csv"
        args = ["predict", str(run), *map(str, photos), "--out", str(out)]
        if (run / "model" / f"fold-{fold}").is_dir():
            args += ["--fold", fold]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        graded = {r["image_id"]: r for r in _rows(out)}
        for row in (r for r in held if r["fold"] == fold):
            for key in (k for k in row if k.startswith("p_")):
                assert float(graded[row["image"]][key]) == pytest.approx(float(row[key]), abs=2e-6)


def test_old_runs_evaluate_and_compare(old_runs, fixture_data, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(old_runs / "svm"),
            str(fixture_data / "dev"),
            "--labels",
            str(fixture_data / "dev.csv"),
            "--out",
            str(out),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text(encoding="utf-8"))
    graded = _rows(out.with_suffix(".csv"))
    right = sum(r["label"] == r["true"] for r in graded)
    assert record["metrics"]["accuracy"]["value"] == pytest.approx(right / len(graded))

    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "compare",
            *(str(old_runs / n) for n in RUNS),
            "--out",
            str(report),
            "--mistakes",
            "1",
            "--samples",
            "10",
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    text = report.read_text(encoding="utf-8")
    for name in RUNS:
        assert f">{name}" in text or f"{name} (" in text
