"""search --optuna-storage: several processes share one Optuna study in a SQLite file."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from .test_cli import assert_clean_failure, run

pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("optuna") / "s", n=36, size=48, seed=2)
    return [str(root / "train"), "--labels", str(root / "train.csv"), "--groups",
            str(root / "groups.csv"), "--model", "svm", "--cv", "3",
            "--set", "search.C=[1,100]", "--set", "search.gamma=[0.0001,0.01]",
            "--set", "search.n_components=[4,16]"]  # fmt: skip


def rows(folder):
    with open(folder / "search.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_processes_add_their_trials_to_one_study(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mangograde",
                "search",
                *data,
                "--optuna-storage",
                storage,
                "--trials",
                "3",
                "--out",
                str(tmp_path / f"worker{i}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, output
    # A third process sees all six trials, adds its own, and lists every one.
    result = run("search", *data, "--optuna-storage", storage, "--trials", "1",
                 "--out", tmp_path / "last")  # fmt: skip
    assert result.exit_code == 0, result.output
    trials = rows(tmp_path / "last")
    assert sorted(int(r["trial"]) for r in trials) == list(range(7))
    for r in trials:
        assert 1 <= float(r["C"]) <= 100 and 1e-4 <= float(r["gamma"]) <= 1e-2  # the bounds
        assert 4 <= int(r["n_components"]) <= 16
        folds = [float(r[f"fold_{i}"]) for i in range(3)]
        assert float(r["accuracy"]) == pytest.approx(sum(folds) / 3)
    assert len({(r["C"], r["gamma"], r["n_components"]) for r in trials}) == 7


def test_a_study_of_another_search_is_refused(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = run("search", *data, "--optuna-storage", storage, "--trials", "1",
                "--out", tmp_path / "a")  # fmt: skip
    assert first.exit_code == 0, first.output
    other = run("search", *data, "--set", "search.C=[5,50]", "--optuna-storage", storage,
                "--trials", "1", "--out", tmp_path / "b")  # fmt: skip
    assert_clean_failure(other, "holds trials of another search", "--study")
    assert not (tmp_path / "b").exists()


def test_optuna_missing_is_said(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = run("search", *data, "--optuna-storage", "sqlite:///x.db", "--out", tmp_path / "o")
    assert_clean_failure(result, "mangograde[tune]")


def test_an_unreachable_study_database_keeps_its_password(data, tmp_path):
    storage = "postgresql+psycopg://packer:s3cret@127.0.0.1:9/studies"
    result = run("search", *data, "--optuna-storage", storage, "--trials", "1",
                 "--out", tmp_path / "s")  # fmt: skip
    assert result.exit_code == 1 and "Cannot open the Optuna study" in result.output
    assert "s3cret" not in result.output and "packer:***@" in result.output
