"""Synthetic demo photos: layout, determinism, and a task that is learnable but not trivial."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from mangograde.basics.errors import MangogradeError
from mangograde.data import kfold, load_dataset
from mangograde.data.synth import synthesize
from mangograde.images import Resize, load_dataset_images


def read_csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_layout_is_the_competitions(tmp_path):
    root = synthesize(tmp_path / "s", n=40, size=48, seed=0)
    train, dev = read_csv(root / "train.csv"), read_csv(root / "dev.csv")
    assert train[0] == ["image_id", "label"] == dev[0]
    assert len(train) - 1 + len(dev) - 1 == 40
    assert {label for _, label in train[1:]} == {"A", "B", "C"}
    ds = load_dataset(root / "train", labels=root / "train.csv", groups=root / "groups.csv")
    assert len(ds) == len(train) - 1
    assert all("not in this dataset" in n for n in ds.notices)  # the dev photos' rows
    dev_ds = load_dataset(root / "dev", labels=root / "dev.csv", groups=root / "groups.csv")
    assert not set(ds.groups) & set(dev_ds.groups), "a fruit in both train and dev"
    assert len(set(ds.groups)) < len(ds), "some fruit should be photographed more than once"


def test_same_seed_same_photos_other_seed_other_photos(tmp_path):
    a = synthesize(tmp_path / "a", n=16, size=40, seed=5)
    b = synthesize(tmp_path / "b", n=16, size=40, seed=5)
    c = synthesize(tmp_path / "c", n=16, size=40, seed=6)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    photos = [p for p in files if p.suffix == ".jpg"]
    assert any(not (c / p).exists() or (a / p).read_bytes() != (c / p).read_bytes() for p in photos)


def test_parallel_drawing_gives_the_same_photos_as_serial(tmp_path, monkeypatch):
    import mangograde.data.synth as synth

    serial = synthesize(tmp_path / "serial", n=24, size=32, seed=1)
    monkeypatch.setattr(synth, "PARALLEL_FROM", 1)
    parallel = synthesize(tmp_path / "parallel", n=24, size=32, seed=1)
    for path in serial.rglob("*.jpg"):
        assert path.read_bytes() == (parallel / path.relative_to(serial)).read_bytes()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(MangogradeError, match="too few"):
        synthesize(tmp_path / "x", n=3)
    with pytest.raises(MangogradeError, match="too small"):
        synthesize(tmp_path / "x", n=20, size=8)


def test_a_pixel_model_learns_it_but_not_perfectly(tmp_path):
    root = synthesize(tmp_path / "s", n=360, size=64, seed=0, dev_fraction=0.1)
    ds = load_dataset(root / "train", labels=root / "train.csv", groups=root / "groups.csv")
    ds, loaded = load_dataset_images(ds, Resize(24))
    features = loaded.arrays.reshape(len(ds), -1).astype(np.float32)
    predicted = np.empty(len(ds), dtype=int)
    for train, test in kfold(ds.labels, 3, ds.groups, seed=0):
        forest = RandomForestClassifier(150, random_state=0, n_jobs=2)
        predicted[test] = forest.fit(features[train], ds.labels[train]).predict(features[test])
    accuracy = (predicted == ds.labels).mean()
    majority = np.bincount(ds.labels).max() / len(ds)
    print(f"pixel forest accuracy {accuracy:.3f}, majority {majority:.3f}")
    assert majority + 0.1 < accuracy < 0.95, accuracy
