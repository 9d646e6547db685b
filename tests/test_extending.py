"""A new model family is one module and one register_model call: the README's example
(examples/logreg_family.py) trains and grades through the command line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "logreg_family.py"


def test_readme_shows_the_example_module_as_it_is():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in readme


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin-data")
    result = CliRunner().invoke(app, ["synth", str(root), "--n", "40", "--size", "48"])
    assert result.exit_code == 0, result.output
    return root


def _mangograde(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mangograde", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_plugin_family_trains_and_grades_through_the_cli(photos, tmp_path):
    env = {"MANGOGRADE_PLUGINS": "logreg_family", "PYTHONPATH": str(EXAMPLE.parent)}
    run = tmp_path / "run"
    data = ["--labels", photos / "train.csv", "--groups", photos / "groups.csv"]
    trained = _mangograde(
        "train", photos / "train", *data, "--model", "logreg", "--cv", "3",
        "--set", "max_iter=200", "--out", run, env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "logreg: accuracy" in trained.stdout
    settings = (run / "config.yaml").read_text(encoding="utf-8")
    assert "model: logreg" in settings and "max_iter: 200" in settings and "C: 1.0" in settings
    with (run / "predictions.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert len(rows) == metrics["n_images"] and metrics["n_folds"] == 3
    for fold, accuracy in enumerate(metrics["accuracy_folds"]):
        held = [r for r in rows if r["fold"] == str(fold)]
        right = sum(r["true"] == r["predicted"] for r in held)
        assert accuracy == pytest.approx(right / len(held))

    graded = _mangograde("predict", run, photos / "dev", "--out", tmp_path / "p.csv", env=env)
    assert graded.returncode == 0, graded.stderr
    assert (tmp_path / "p.csv").read_text(encoding="utf-8").startswith("image_id,label,p_A")


def test_unknown_model_lists_the_plugin_beside_the_built_in_families(photos, tmp_path):
    env = {"MANGOGRADE_PLUGINS": "logreg_family", "PYTHONPATH": str(EXAMPLE.parent)}
    result = _mangograde("train", photos / "train", "--model", "nosuch", "--out", tmp_path, env=env)
    assert result.returncode == 1
    assert "Valid models: cnn, colour, ensemble, logreg, rf, stack, svm, transfer" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_plugin_module_is_named(photos, tmp_path):
    env = {"MANGOGRADE_PLUGINS": "no_such_family_module"}
    result = _mangograde("train", photos / "train", "--model", "svm", "--out", tmp_path, env=env)
    assert result.returncode == 1
    assert "no_such_family_module" in result.stderr and "Traceback" not in result.stderr


def test_a_plugin_that_raises_is_named_without_a_traceback(photos, tmp_path):
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "broken_family.py").write_text("raise RuntimeError('the plugin broke')\n")
    env = {"MANGOGRADE_PLUGINS": "broken_family", "PYTHONPATH": str(plugin)}
    result = _mangograde("train", photos / "train", "--model", "svm", "--out", tmp_path / "r",
                         env=env)  # fmt: skip
    assert result.returncode == 1
    assert "broken_family" in result.stderr and "the plugin broke" in result.stderr
    assert "Traceback" not in result.stderr
