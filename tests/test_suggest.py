"""What to label next: the least sure photos, spread over the run's features, never a
labelled one and never two near-duplicates."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.evaluation.selection import pick, pooled, uncertainty

from .test_cli import assert_clean_failure, run


def test_uncertainty_by_margin_and_by_entropy():
    proba = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(uncertainty(proba, "margin"), [0.0, 1.0, 1.0, 0.7])
    by_entropy = uncertainty(proba, "entropy")
    assert by_entropy[0] == pytest.approx(0, abs=1e-9) and by_entropy[2] == pytest.approx(1)
    assert by_entropy[1] < by_entropy[2]
    with pytest.raises(SettingsError, match="--by must be one of margin, entropy"):
        uncertainty(proba, "variance")


def _clusters(rng, centres, per, spread=0.3):
    return np.concatenate([c + spread * rng.normal(size=(per, len(c))) for c in centres])


def test_picks_are_unsure_spread_and_never_near_duplicates():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 3
    features = _clusters(rng, centres, 10)  # four kinds of photo, ten of each
    unsure = np.concatenate([np.full(10, 0.9), np.full(10, 0.8), np.full(10, 0.7),
                             np.full(10, 0.1)]) + rng.uniform(0, 0.01, 40)  # fmt: skip
    twins = np.concatenate([features, features[:3]])  # three photos uploaded twice
    unsure = np.concatenate([unsure, unsure[:3]])
    found = pick(unsure, [twins], 3, candidates=10)  # the 30 least sure: kinds 0, 1, 2
    assert found.order[0] == int(np.argmax(unsure))  # the least sure first
    kinds = {i % 40 // 10 for i in found.order}
    assert kinds == {0, 1, 2}  # one from each unsure kind, not three of the first
    many = pick(unsure, [twins], 43, candidates=1)
    kept = {i % 40 for i in many.order}
    assert len(kept) == len(many.order)  # a photo and its copy are never both picked
    assert {40, 41, 42} <= set(many.duplicates) and many.threshold > 0
    plain = pick(unsure, [twins], 43, duplicate=0.0)  # exact copies only
    assert len(plain.order) == 40 and len(plain.duplicates) == 3


def test_labelled_photos_and_their_near_copies_are_never_picked():
    rng = np.random.default_rng(1)
    features = _clusters(rng, np.eye(3) * 3 + 1, 5)
    unsure = np.linspace(1, 0, 15)
    labelled = features[:1] + 1e-6  # a copy of photo 0 is already labelled
    found = pick(unsure, [features], 15, labelled=[labelled])  # all of them, if it could
    assert 0 not in found.order and found.duplicates.get(0) == -1
    assert found.order[0] in range(5, 15)  # far from the labelled one comes first


def test_fruits_are_picked_from_all_their_photos():
    features = [np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])]
    items = pooled(features, [np.array([0, 1]), np.array([2])])
    assert items[0].shape == (2, 2) and np.allclose(np.linalg.norm(items[0], axis=1), 1)


# -- the command ------------------------------------------------------------------------


def test_suggest_writes_the_photos_to_label_next(colour_run, tmp_path):
    root, colour = colour_run
    photos = tmp_path / "new"
    shutil.copytree(root / "dev", photos)
    first = sorted(photos.iterdir())[0]
    shutil.copy(first, photos / "copy-of-first.jpg")  # the same photo twice
    out = tmp_path / "pick.csv"
    done = run("suggest", colour, photos, "--n", "8", "--out", out)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) == 8
    chosen = [r["image_id"] for r in rows]
    assert not {first.name, "copy-of-first.jpg"} <= set(chosen)
    assert all(0 <= float(r["uncertainty"]) <= 1 for r in rows)
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("image_id,label\n" + "".join(f"{c},A\n" for c in chosen[:4]))
    again = tmp_path / "again.csv"
    done = run("suggest", colour, photos, "--n", "8", "--labelled", labelled, "--out", again)
    assert done.exit_code == 0, done.output and "4 already labelled" in done.output
    assert not set(chosen[:4]) & {r["image_id"] for r in csv.DictReader(again.open())}
    assert_clean_failure(run("suggest", colour, photos, "--n", "8", "--out", out), "already exists")


def test_suggest_picks_fruits_with_groups(colour_run, tmp_path):
    root, colour = colour_run
    groups = tmp_path / "groups.csv"
    names = sorted(p.name for p in (root / "dev").iterdir())
    groups.write_text(
        "image,group\n" + "".join(f"{n},fruit-{i // 2}\n" for i, n in enumerate(names))
    )
    out = tmp_path / "fruits.csv"
    done = run("suggest", colour, root / "dev", "--n", "3", "--groups", groups, "--out", out)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 3 and all(r["fruit"].startswith("fruit-") for r in rows)
    assert all(len(r["photos"].split(";")) in (1, 2) for r in rows)
    everything = tmp_path / "all.csv"
    everything.write_text("".join(f"{n},A\n" for n in names))
    assert_clean_failure(run("suggest", colour, root / "dev", "--n", "3", "--labelled", everything,
                             "--out", tmp_path / "x.csv"), "already labelled")  # fmt: skip
