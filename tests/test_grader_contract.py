"""The grading core (issue 35): one ``Grader`` contract that a run's predictor and an
export both satisfy, checked on both the way scikit-learn's estimator checks are, and one
``grade_batch`` that every command and the service grade through."""

from __future__ import annotations

import numpy as np
import pytest

from mangograde.graders import Graded, Grader, grade_batch, open_grader
from mangograde.images import load_images

from .service_helpers import NO_FLIPS, TINY_CNN, train_tiny
from .test_cli import run

# fruits of 3, 2 and 1 photos, and one photo of no fruit (a fruit of its own)
FRUITS = ["f1", "f1", "f1", "f2", "f2", "f3", ""]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("contract") / "s", n=36, size=48, seed=4)


@pytest.fixture(scope="module")
def run_and_export(synth, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("runs")
    trained = train_tiny(synth, out / "cnn", *TINY_CNN, *NO_FLIPS, "--set",
                         "calibration=temperature", "--set", "fruit.rule=log-mean", "--set",
                         "abstain=0.55")  # fmt: skip
    export = out / "export"
    result = run("export", trained, "--out", export)
    assert result.exit_code == 0, result.output
    return trained, export


@pytest.fixture(scope="module")
def photos(synth):
    paths = sorted((synth / "train").iterdir())[: len(FRUITS)]
    return [p.name for p in paths], paths


@pytest.fixture(params=["run", "export"])
def grader(request, run_and_export) -> Grader:
    trained, export = run_and_export
    return open_grader(trained if request.param == "run" else export)


def test_every_grader_satisfies_the_contract(grader, photos):
    assert isinstance(grader, Grader)
    assert grader.grades and len(set(grader.grades)) == len(grader.grades)
    assert grader.family == "cnn" and len(grader.model_sha256) == 64
    assert grader.name == "cnn" and grader.familiarity is not None
    names, paths = photos
    images = load_images(paths, grader.geometry).arrays
    proba, codes = grader.grade(images)
    assert proba.shape == (len(images), len(grader.grades))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(grader.predict_proba(images), proba, atol=1e-9)
    scored, scored_codes, scores = grader.grade_and_score(images)
    np.testing.assert_allclose(scored, proba, atol=1e-9)
    assert list(scored_codes) == list(codes)
    assert scores is not None and scores.shape[1] == len(images)
    assert grader.unfamiliar(scores).shape == (len(images),)
    assert 0.0 <= grader.drift(scores) <= 1.0
    graded = grade_batch(grader, images, names, FRUITS)
    assert isinstance(graded, Graded) and graded.image_ids == names
    assert list(graded.predicted) == list(codes)
    assert graded.fruit_grades is not None
    assert graded.fruit_grades.fruits.names == ("f1", "f2", "f3", names[-1])
    assert len(graded.reasons) == len(images) and graded.has_checks


def test_a_run_and_its_export_grade_the_same_photos_alike(run_and_export, photos):
    trained, export = run_and_export
    names, paths = photos
    ours, theirs = open_grader(trained), open_grader(export)
    assert type(ours) is not type(theirs)  # a RunPredictor and an ExportedGrader
    assert ours.rule == theirs.rule and ours.grades == theirs.grades
    images = load_images(paths, ours.geometry).arrays
    a = grade_batch(ours, images, names, FRUITS)
    b = grade_batch(theirs, images, names, FRUITS)
    # ONNX Runtime's float32 kernels against PyTorch's: the same within 1e-6
    np.testing.assert_allclose(b.proba, a.proba, atol=1e-6)
    assert list(b.predicted) == list(a.predicted)
    assert b.labels == a.labels and b.reasons == a.reasons
    np.testing.assert_allclose(b.familiarity, a.familiarity, rtol=1e-4)
    assert list(b.unfamiliar) == list(a.unfamiliar)
    fa, fb = a.fruit_grades, b.fruit_grades
    assert fa is not None and fb is not None
    np.testing.assert_allclose(fb.proba, fa.proba, atol=1e-6)
    assert list(fb.predicted) == list(fa.predicted) and list(fb.check) == list(fa.check)
    assert [fb.reason(i) for i in range(len(fb.fruits))] == [
        fa.reason(i) for i in range(len(fa.fruits))
    ]


def test_grade_batch_names_its_abstain_and_refuses_mismatched_ids(run_and_export, photos):
    from mangograde.basics.errors import SettingsError

    trained, _ = run_and_export
    names, paths = photos
    grader = open_grader(trained)
    images = load_images(paths, grader.geometry).arrays
    everything = grade_batch(grader, images, names, abstain=1.01)
    assert everything.abstain == 1.01 and all(everything.reasons)
    assert set(everything.labels) == {"check"}
    with pytest.raises(SettingsError, match="fruit ids for"):
        grade_batch(grader, images, names, FRUITS[:2])
    with pytest.raises(SettingsError, match="photo names for"):
        grade_batch(grader, images, names[:2])
