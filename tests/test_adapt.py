"""mangograde adapt: a run moved to new photos with a few labels, as a new run that names
its parent; measured against the parent and a run from scratch with --cv."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from .service_helpers import TINY_CNN, train_tiny
from .test_cli import assert_clean_failure, run


@pytest.fixture(scope="module")
def new_camera(tmp_path_factory):
    """A tiny run, and photos of another 'camera' (warmer, darker) with their labels."""
    from PIL import Image

    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("adapt") / "s", n=48, size=48, seed=3)
    new = root.parent / "new"
    new.mkdir()
    rows = (root / "dev.csv").read_text().splitlines()[1:] + (
        root / "train.csv"
    ).read_text().splitlines()[1:8]
    for row in rows:
        name = row.split(",")[0]
        source = root / ("dev" if (root / "dev" / name).exists() else "train") / name
        pixels = np.asarray(Image.open(source).convert("RGB"), dtype=np.float64)
        shifted = np.clip(pixels * np.array([1.15, 0.95, 0.7]) * 0.8, 0, 255).astype(np.uint8)
        Image.fromarray(shifted).save(new / name)
    (root.parent / "new.csv").write_text("image_id,label\n" + "\n".join(rows) + "\n")
    return root, new, root.parent / "new.csv"


RF = ["--model", "rf", "--cv", "2", "--set", "features.size=16", "--set", "n_estimators=12"]


@pytest.fixture(scope="module")
def forest(new_camera, tmp_path_factory):
    """A tiny classical run on raw pixels (its refits take no time)."""
    return train_tiny(new_camera[0], tmp_path_factory.mktemp("parents") / "forest", *RF)


def test_a_classical_run_adapts_and_the_new_run_grades_like_any_run(new_camera, forest, tmp_path):
    root, new, labels = new_camera
    parent = forest
    done = run("adapt", parent, new, "--labels", labels, "--cv", "2", "--out", tmp_path / "ad",
               "--set", "adapt.weight=2", "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "parent forest (unadapted)" in done.output and "trained from scratch" in done.output
    config = yaml.safe_load((tmp_path / "ad" / "config.yaml").read_text())
    assert config["adapt"]["parent_name"] == "forest" and config["adapt"]["weight"] == 2
    assert config["adapt"]["n_photos"] == len(labels.read_text().splitlines()) - 1
    metrics = json.loads((tmp_path / "ad" / "metrics.json").read_text())
    arms = metrics["adapt"]
    assert {"parent", "adapted", "scratch"} <= set(arms) and arms["photos"] == config["adapt"][
        "n_photos"
    ]
    assert 0 <= arms["adapted"]["accuracy"] <= 1 and metrics["familiar"]["threshold"] > 0
    graded = run("predict", tmp_path / "ad", new, "--out", tmp_path / "p.csv", "--quiet")
    assert graded.exit_code == 0, graded.output
    scored = run("evaluate", tmp_path / "ad", new, "--labels", labels, "--quiet")
    assert scored.exit_code == 0, scored.output
    assert "Its parent forest (unadapted) on the same photos: accuracy" in scored.output
    report = tmp_path / "compare.html"
    compared = run("compare", parent, tmp_path / "ad", "--out", report)
    assert compared.exit_code == 0, compared.output
    assert "adapted from forest" in report.read_text(encoding="utf-8")


def test_a_network_adapts_with_and_without_labels(new_camera, forest, tmp_path):
    from mangograde.images import load_images
    from mangograde.runs import open_predictor

    root, new, labels = new_camera
    parent = train_tiny(root, tmp_path / "cnn", *TINY_CNN)
    done = run("adapt", parent, new, "--labels", labels, "--out", tmp_path / "ad",
               "--set", "adapt.epochs=2", "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    before, after = open_predictor(parent), open_predictor(tmp_path / "ad")
    photos = load_images(sorted(new.iterdir()), before.geometry).arrays
    assert not np.allclose(before.predict_proba(photos), after.predict_proba(photos))
    assert after.familiarity is not None
    bn = run("adapt", parent, new, "--unlabelled", "--out", tmp_path / "bn", "--quiet")
    assert bn.exit_code == 0, bn.output
    moved = open_predictor(tmp_path / "bn")
    assert not np.allclose(before.predict_proba(photos), moved.predict_proba(photos))
    first = moved.bundles[0].model.module_
    stats = [m.running_mean for m in first.modules() if hasattr(m, "running_mean")]
    assert stats, "the network has BatchNorm layers"
    assert_clean_failure(run("adapt", forest, new, "--unlabelled", "--out", tmp_path / "x"),
                         "--unlabelled adapts only the network families")  # fmt: skip


def test_bad_input_is_refused_with_what_to_do(new_camera, forest, tmp_path):
    root, new, labels = new_camera
    parent = forest
    other = tmp_path / "other.csv"
    other.write_text(labels.read_text().replace(",A", ",Premium").replace(",B", ",Standard")
                     .replace(",C", ",Reject"))  # fmt: skip
    out = tmp_path / "ad"
    assert_clean_failure(run("adapt", parent, new, "--labels", other, "--out", out),
                         "Premium", "--grades")  # fmt: skip
    names = ["--grades", "Premium,Standard,Reject"]
    # matched by rank on its own, as evaluate does, saying so (issue 40, point 8)
    regraded = run("adapt", parent, new, "--labels", other, *names, "--out", out, "--quiet")
    assert regraded.exit_code == 0 and "matched by rank" in regraded.output, regraded.output
    lines = labels.read_text().splitlines()
    one = tmp_path / "one.csv"
    kept = [
        lines[0],
        *[r for r in lines[1:] if not r.endswith(",A")],
        next(r for r in lines[1:] if r.endswith(",A")),
    ]
    one.write_text("\n".join(kept) + "\n")
    assert_clean_failure(run("adapt", parent, new, "--labels", one, "--out", tmp_path / "o"),
                         "at least 2 photos of each grade", "A (1)", "1 more photo of A",
                         "mangograde suggest")  # fmt: skip
    seen = tmp_path / "seen"
    seen.mkdir()
    rows = (root / "train.csv").read_text().splitlines()[1:]
    picked = [next(r for r in rows if r.endswith(g)) for g in [",A", ",B", ",C"]]
    picked += [
        next(r for r in rows if r.endswith(g) and r not in picked) for g in [",A", ",B", ",C"]
    ]
    for row in picked:
        shutil.copy(root / "train" / row.split(",")[0], seen)
    (tmp_path / "seen.csv").write_text("image_id,label\n" + "\n".join(picked) + "\n")
    warned = run("adapt", parent, seen, "--labels", tmp_path / "seen.csv", "--out",
                 tmp_path / "w", "--quiet")  # fmt: skip
    assert warned.exit_code == 0 and "the parent was trained on" in warned.output, warned.output
    export = tmp_path / "export"
    (export).mkdir()
    (export / "grader.json").write_text("{}")
    assert_clean_failure(run("adapt", export, new, "--labels", labels, "--out", tmp_path / "e"),
                         "is an export")  # fmt: skip
    assert_clean_failure(run("adapt", parent, new, "--labels", labels, "--out", tmp_path / "s",
                             "--set", "adapt.lr=5"), "adapt.lr must be above 0")  # fmt: skip
    assert_clean_failure(run("adapt", parent, new, "--labels", labels, "--out", out),
                         "already exists")  # fmt: skip
