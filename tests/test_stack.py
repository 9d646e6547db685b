"""--model stack: the meta-learner learns only from models that never saw the photo's fruit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin

from mangograde.basics.errors import SettingsError
from mangograde.models.registry import ModelFamily, register_model, signature_defaults
from mangograde.models.stack import StackedGrader
from mangograde.runs import open_run

from .service_helpers import train_tiny
from .test_cli import run
from .test_cli_models import read_csv

GRADES = ("A", "B", "C")


class Spy(ClassifierMixin, BaseEstimator):
    """Remembers the grade of every fruit it trained on (the fruit's number is the red of
    its photos): a perfect memoriser, so it grades a fruit it saw one-hot and any other
    fruit uniformly. A leak would show as a one-hot row."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> Spy:
        self.classes_ = np.unique(y)
        self.fruits_ = X[:, 0, 0, 0].astype(np.int64)
        self.codes_ = np.searchsorted(self.classes_, y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        proba = np.full((len(X), len(self.classes_)), 1 / len(self.classes_))
        for i, fruit in enumerate(X[:, 0, 0, 0].astype(np.int64)):
            seen = np.flatnonzero(self.fruits_ == fruit)
            if len(seen):
                proba[i] = np.eye(len(self.classes_))[self.codes_[seen[0]]]
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


register_model(
    ModelFamily(
        name="spy",
        build=lambda settings: Spy(seed=settings["seed"]),
        params=lambda: signature_defaults(Spy, exclude=("seed",)),
        features={"size": 8},
        trusted=("tests.test_stack.Spy",),
    )
)


@pytest.fixture(scope="module")
def fruits(tmp_path_factory) -> Path:
    """30 fruits (10 a grade), 2 photos each; a fruit's photos share its red value."""
    root = tmp_path_factory.mktemp("fruits")
    rows = ["image_id,group"]
    for fruit in range(30):
        grade = GRADES[fruit % 3]
        for shot in range(2):
            name = f"{grade}/f{fruit:02d}_{shot}.png"
            (root / grade).mkdir(exist_ok=True)
            Image.new("RGB", (12, 12), (fruit, 100 + 50 * shot, 40)).save(root / name)
            rows.append(f"{name},fruit{fruit}")
    (root / "groups.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _train_stack(root: Path, out: Path, *settings: str) -> Path:
    result = run("train", root, "--groups", root / "groups.csv", "--model", "stack",
                 "--cv", "3", *settings, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_every_probability_the_meta_learner_fits_on_comes_from_a_model_blind_to_that_fruit(
    fruits, tmp_path
):
    out = _train_stack(fruits, tmp_path / "run", "--set", "members=[spy, spy]")
    held_out = open_run(out).held_out
    for fold, bundle in enumerate(open_run(out).bundles()):
        stack = bundle.model
        assert isinstance(stack, StackedGrader) and stack.member_labels_ == ["spy-0", "spy-1"]
        # Each fruit's photos sit in one inner fold (so no inner model saw a twin).
        by_fruit: dict[int, set[int]] = {}
        trained = stack.members_[0].fruits_
        for photo, fruit in enumerate(trained):
            by_fruit.setdefault(int(fruit), set()).add(int(stack.inner_fold_[photo]))
        assert all(len(folds) == 1 for folds in by_fruit.values())
        # No leak: every training row of the meta-learner is the spy's "never saw it".
        np.testing.assert_array_equal(stack.inner_proba_, 1 / 3)
        # The refit members never saw the fold's held-out fruits ...
        test_fruits = {int(g.removeprefix("fruit")) for g in
                       np.asarray(held_out.groups)[held_out.folds == fold]}  # fmt: skip
        assert test_fruits and not test_fruits & set(trained.tolist())
        # ... and the spy does catch a fruit it saw (the check above can fail).
        photos = np.stack([np.full((8, 8, 3), (f, 100, 40), np.uint8) for f in trained[:4]])
        assert (stack.members_[0].predict_proba(photos).max(1) == 1).all()


def test_a_stack_of_two_real_families_trains_grades_and_explains(tmp_path):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=60, size=48, seed=3)
    tiny_cnn = "{preset: cnn-fast, set: {epochs: 2, width: 8, features.size: 32}}"
    out = train_tiny(root, tmp_path / "run", "--model", "stack", "--cv", "2", "--set",
                     f"members=[colour-texture, {tiny_cnn}]", "--set", "inner_cv=2")  # fmt: skip
    metrics = open_run(out).metrics
    assert {"inner_accuracy_colour-texture", "inner_accuracy_cnn-fast"} <= set(metrics)
    stack = open_run(out).bundles(0)[0].model
    assert stack.inner_proba_.shape[1:] == (2, 3) and np.isfinite(stack.inner_proba_).all()
    # The meta-learner reads both members (9 inputs -> 3 grades: 2 members x 3 grades).
    assert stack.meta_.coef_.shape == (3, 6)
    rows = read_csv(out / "predictions.csv")
    proba = np.array([[float(r[f"p_{g}"]) for g in GRADES] for r in rows])
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    graded = tmp_path / "graded.csv"
    result = run("predict", out, root / "dev", "--out", graded)
    assert result.exit_code == 0, result.output
    assert len(read_csv(graded)) == len(list((root / "dev").iterdir()))
    photo = next((root / "dev").iterdir())
    result = run("explain", out, photo, "--out", tmp_path / "why.png", "--samples", "40")
    assert result.exit_code == 0 and (tmp_path / "why.png").stat().st_size > 0, result.output
    result = run("export", out, "--format", "onnx", "--out", tmp_path / "onnx")
    assert result.exit_code != 0 and "stack run" in result.output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("members=[spy]", "at least 2 members"),
        ("members=[spy, no-such-thing]", "Unknown model 'no-such-thing'"),
        ("members=[spy, stack]", "cannot be a member of a stack"),
        ("members=[spy, {set: {C: 1}}]", "name a preset or family"),
        ("members=[spy, {model: spy, sett: {C: 1}}]", "unknown key sett"),
        ("inner_cv=1", "at least 2 folds"),
        ("meta_c=0", "above 0"),
    ],
)
def test_bad_stack_settings_are_refused_before_any_photo_is_read(
    fruits, tmp_path, setting, message
):
    result = run("train", fruits, "--model", "stack", "--set", "members=[spy, spy]",
                 "--set", setting, "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_too_few_fruits_for_the_inner_folds_says_which_setting(fruits):
    photos = np.stack([np.full((8, 8, 3), (f, 0, 0), np.uint8) for f in range(6)])
    stack = StackedGrader(members=["spy", "spy"], inner_cv=5)
    with pytest.raises(SettingsError, match="inner_cv=5"):
        stack.fit(photos, np.array(list("AABBCC")))


def test_the_best_measured_stack_is_a_preset():
    from mangograde.models.registry import resolve

    settings = resolve(preset_name="stack-study-colour")
    assert settings["model"] == "stack"
    labels = StackedGrader(**settings["params"]).resolved_members()
    assert [(label, s["features"].get("size")) for label, s in labels] == [
        ("cnn-study", 224),
        ("colour-texture", 256),
    ]
