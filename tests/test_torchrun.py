"""CNN training under torchrun: 2 CPU processes (gloo) learn what 1 process learns.

``batch_size`` is the global batch: each of N processes takes B/N of it. With dropout
off the two runs see the same photos, the same augmentation and the same BatchNorm
statistics, so they differ only by float rounding (sums in another order; AdamW scales
each gradient by its running RMS, so a near-zero gradient's rounding can move a weight by
a small fraction of the learning rate). 1e-4 is 5% of one step's largest move at lr 0.002;
measured: 3.5e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mangograde.models.bundle import load_bundle
from mangograde.models.cnn_estimator import CNNClassifier

from .test_cli import assert_clean_failure, run
from .test_cnn_cli import probabilities

TOLERANCE = 1e-4
RECIPE = ["--model", "cnn", "--cv", "2", "--set", "features.size=32", "--set", "epochs=2",
          "--set", "width=8", "--set", "threads=1", "--set", "batch_size=8",
          "--set", "dropout=0"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("ddp") / "s", n=36, size=48, seed=2)
    return [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]


def torchrun(*args, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "mangograde", "train", *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def weights(out, fold):
    return load_bundle(out / "model" / f"fold-{fold}").model.module_.state_dict()


def assert_same_training(a, b):
    np.testing.assert_allclose(probabilities(a), probabilities(b), atol=TOLERANCE)
    for fold in (0, 1):
        mine, theirs = weights(a, fold), weights(b, fold)
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_allclose(mine[key], theirs[key], atol=TOLERANCE, err_msg=key)


@pytest.fixture(scope="module")
def one_process(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    result = run("train", *data, *RECIPE, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_two_processes_learn_what_one_process_learns(data, one_process, tmp_path):
    done = torchrun(*data, *RECIPE, "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Run written to") == 1  # process 0 reports, process 1 is quiet
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else written
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert json.loads((tmp_path / "run" / "timing.json").read_text())["processes"] == 2
    assert_same_training(one_process, tmp_path / "run")


def test_a_killed_run_resumes_under_torchrun(data, one_process, tmp_path, monkeypatch):
    original, saves = CNNClassifier._checkpoint, []

    def killed_in_fold_1(self, *a, **k):
        original(self, *a, **k)
        saves.append(1)
        if len(saves) == 3:  # fold 0 done, fold 1 one epoch in
            raise KeyboardInterrupt

    monkeypatch.setattr(CNNClassifier, "_checkpoint", killed_in_fold_1)
    killed = tmp_path / "killed"
    assert run("train", *data, *RECIPE, "--out", killed).exit_code == 130
    done = torchrun(*data, *RECIPE, "--resume", "--out", killed, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / ".killed.partial").exists()
    assert_same_training(one_process, killed)


def test_torchrun_refuses_families_that_do_not_train_that_way(data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it; refused before joining
    result = run("train", *data, "--model", "svm", "--cv", "2", "--out", tmp_path / "r")
    assert_clean_failure(result, "several processes: cnn;", "--model svm does not")
    result = run("train", *data, *RECIPE, "--backend", "loky", "--out", tmp_path / "r")
    assert_clean_failure(result, "drop --backend")
    assert not any(tmp_path.iterdir())
