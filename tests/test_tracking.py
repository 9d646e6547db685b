"""Runs mirrored in MLflow: what is logged equals what the run folder holds."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

from .helpers import write_photo


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "g"
    for g, grade in enumerate("ABC"):
        for i in range(6):
            write_photo(root / grade / f"{g}{i}.jpg", seed=10 * g + i, size=(24, 24))
    return root


def test_the_metrics_logged_are_the_runs_own(data, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts in ./mlruns beside a SQLite store
    out = tmp_path / "run"
    result = run("train", data, "--model", "rf", "--set", "n_estimators=4", "--set",
                 "features.size=8", "--set", "expand=none", "--cv", "2", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = result.output.split("Tracked in MLflow as run ")[1].split()[0]
    logged = mlflow.tracking.MlflowClient(uri).get_run(run_id).data
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in ("accuracy", "accuracy_std", "n_images", "n_held_out", "oob_raw"):
        assert logged.metrics[key] == pytest.approx(metrics[key])
    assert logged.params["params.n_estimators"] == "4" and logged.params["model"] == "rf"
    timing = json.loads((out / "timing.json").read_text(encoding="utf-8"))
    assert logged.metrics["time.model_bytes"] == timing["model_bytes"]
    artifacts = mlflow.tracking.MlflowClient(uri).list_artifacts(run_id, "run")
    assert "run/config.yaml" in {a.path for a in artifacts}


def test_track_without_mlflow_says_what_to_install(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run("train", data, "--model", "rf", "--track", "mlflow", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "mangograde[track]" in result.output
    assert not (tmp_path / "r").exists()
    plain = run("train", data, "--model", "rf", "--set", "n_estimators=2", "--set",
                "features.size=8", "--cv", "2", "--out", tmp_path / "p")  # fmt: skip
    assert plain.exit_code == 0, plain.output


@pytest.mark.parametrize(
    "uri",
    [
        "http://packer:s3cret@127.0.0.1:9",
        "bogus://nowhere",
        "postgresql://packer:s3cret@127.0.0.1:9/x",
    ],
)
def test_a_tracker_that_is_down_or_bogus_is_named_fast_and_keeps_its_password(
    data, tmp_path, monkeypatch, uri
):
    pytest.importorskip("mlflow")
    import time

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.perf_counter()
    result = run("train", data, "--model", "rf", "--set", "n_estimators=3", "--cv", "2",
                 "--out", tmp_path / "r")  # fmt: skip
    assert time.perf_counter() - started < 60
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert "The run is written in" in said and "did not take it" in said
    assert "s3cret" not in result.output and "Traceback" not in result.output
    assert (tmp_path / "r" / "metrics.json").is_file()
