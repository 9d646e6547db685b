"""mangograde export of classical runs (issue 36): colour, svm and rf runs (and stacks of
them) as arrays graded with numpy, as their runs grade, checked field by field."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mangograde.graders import Grader, NumpyExportGrader, grade_batch, open_grader
from mangograde.images import load_images

from .service_helpers import train_tiny
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv

RECIPES = {
    "colour": ["--model", "colour", "--cv", "2", "--set", "features.size=64",
               "--set", "n_estimators=20"],
    "svm": ["--model", "svm", "--cv", "2", "--set", "features.size=24",
            "--set", "n_components=10"],  # svm-study: polar-warped pixels
    "rf": ["--model", "rf", "--cv", "2", "--set", "features.size=16",
           "--set", "n_estimators=12", "--set", "features.expand=flip"],
}  # fmt: skip
FRUITS = ["f1", "f1", "f1", "f2", "f2", "f3", ""]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("classical") / "s", n=40, size=48, seed=2)


@pytest.fixture(scope="module")
def runs(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {name: train_tiny(synth, out / name, *recipe) for name, recipe in RECIPES.items()}


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    for name, trained in runs.items():
        result = run("export", trained, "--out", out / name)
        assert result.exit_code == 0, result.output
        assert "as arrays graded with numpy" in result.output
    return {name: out / name for name in runs}


def graded(csv):
    rows = read_csv(csv)
    proba = np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])
    return rows, proba


def photos(synth):
    return [synth / "train", synth / "dev"]  # 40 photos


@pytest.mark.parametrize("family", list(RECIPES))
def test_every_family_exports_and_predict_grades_as_with_its_run(
    synth, runs, exports, family, tmp_path
):
    manifest = json.loads((exports[family] / "grader.json").read_text())
    assert manifest["engine"] == "numpy" and manifest["format_version"] == 2
    assert manifest["source"]["family"] == family and len(manifest["bundles"]) == 2
    assert set(manifest["files"]) == {"model.npz", "familiarity.npz", "not_a_fruit.onnx",
                                      "not_a_fruit.npz"}  # fmt: skip
    assert manifest["parity_max_abs_diff"] < 1e-9
    assert manifest["familiarity"]["member_features"][0] > 0
    for source, name in ((runs[family], "run.csv"), (exports[family], "export.csv")):
        done = run("predict", source, *photos(synth), "--out", tmp_path / name)
        assert done.exit_code == 0, done.output
    (ours, p_run), (theirs, p_export) = (
        graded(tmp_path / "run.csv"),
        graded(tmp_path / "export.csv"),
    )
    assert len(ours) == 40 and [r["image_id"] for r in ours] == [r["image_id"] for r in theirs]
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    assert np.abs(p_run - p_export).max() < 1e-5
    assert [r["familiarity"] for r in ours] == [r["familiarity"] for r in theirs]
    assert [r["reason"] for r in ours] == [r["reason"] for r in theirs]


def test_one_svm_fold_grades_by_its_own_vote_as_the_run_does(synth, runs, tmp_path):
    out = tmp_path / "fold1"
    result = run("export", runs["svm"], "--fold", "1", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "grader.json").read_text())
    assert manifest["fold_rule"] == "fold 1 alone"
    assert manifest["members"][0]["grades_by"] == "svc-votes"
    ours, theirs = open_grader(runs["svm"], fold=1), open_grader(out)
    images = load_images(sorted((synth / "train").iterdir()), ours.geometry).arrays
    p_run, codes_run = ours.grade(images)
    p_export, codes_export = theirs.grade(images)
    np.testing.assert_allclose(p_export, p_run, atol=1e-9)
    assert list(codes_export) == list(codes_run)
    # the model's own rule: the SVM's vote, not the most likely calibrated grade
    model = ours.models[0]
    assert list(codes_run) == list(model.predict(images))


def test_a_classical_export_satisfies_the_grader_contract(synth, runs, exports):
    grader = open_grader(exports["rf"])
    assert isinstance(grader, Grader) and isinstance(grader, NumpyExportGrader)
    assert grader.family == "rf" and grader.name == "rf" and len(grader.model_sha256) == 64
    assert grader.familiarity is not None
    paths = sorted((synth / "train").iterdir())[: len(FRUITS)]
    names = [p.name for p in paths]
    images = load_images(paths, grader.geometry).arrays
    proba, codes = grader.grade(images)
    assert proba.shape == (len(images), len(grader.grades))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(grader.predict_proba(images), proba, atol=1e-12)
    scored, scored_codes, scores = grader.grade_and_score(images)
    np.testing.assert_allclose(scored, proba, atol=1e-12)
    assert list(scored_codes) == list(codes) and scores.shape == (2, len(images))
    assert grader.unfamiliar(scores).shape == (len(images),)
    assert 0.0 <= grader.drift(scores) <= 1.0
    ours = open_grader(runs["rf"])
    a, b = (grade_batch(g, images, names, FRUITS) for g in (ours, grader))
    np.testing.assert_allclose(b.proba, a.proba, atol=1e-12)
    assert b.labels == a.labels and b.reasons == a.reasons
    np.testing.assert_allclose(b.familiarity, a.familiarity, rtol=1e-9)
    np.testing.assert_allclose(b.fruit_grades.proba, a.fruit_grades.proba, atol=1e-12)


def test_evaluate_and_serve_take_a_classical_export(synth, runs, exports, tmp_path):
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    labelled = [synth / "train", "--labels", synth / "train.csv", "--bootstrap", "20"]
    ours = run("evaluate", runs["colour"], *labelled, "--out", tmp_path / "run.json")
    theirs = run("evaluate", exports["colour"], *labelled, "--out", tmp_path / "export.json")
    assert ours.exit_code == 0 and theirs.exit_code == 0, theirs.output
    records = [json.loads((tmp_path / f).read_text()) for f in ("run.json", "export.json")]
    assert records[1]["metrics"]["accuracy"] == records[0]["metrics"]["accuracy"]
    with TestClient(create_app(ServeOptions(run=exports["colour"]))) as client:
        info = client.get("/v1/model").json()
        assert info["family"] == "colour" and "numpy export" in info["fold_rule"]
        photo = next((synth / "dev").iterdir()).read_bytes()
        answer = client.post("/v1/grade", files=[("files", ("a.png", photo))]).json()
        assert answer["results"][0]["grade"] in ("A", "B", "C")


def test_a_stack_of_classical_members_exports_and_one_with_a_network_is_refused(synth, tmp_path):
    members = ("members=[{model: rf, set: {features.size: 16, n_estimators: 8}}, "
               "{model: svm, set: {features.size: 24, n_components: 8}}]")  # fmt: skip
    stack = train_tiny(synth, tmp_path / "stack", "--model", "stack", "--cv", "2",
                       "--set", members, "--set", "inner_cv=2")  # fmt: skip
    result = run("export", stack, "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    ours, theirs = open_grader(stack), open_grader(tmp_path / "x")
    images = load_images(sorted((synth / "dev").iterdir()), ours.geometry).arrays
    (p_run, c_run), (p_export, c_export) = ours.grade(images), theirs.grade(images)
    np.testing.assert_allclose(p_export, p_run, atol=1e-9)
    assert list(c_export) == list(c_run)

    from mangograde.basics.errors import MangogradeError
    from mangograde.workflows.export_classical import photo_spec

    class Network:
        module_ = None

    model = open_run_model(stack)
    model.members_[1] = Network()
    with pytest.raises(MangogradeError, match="stack run whose member .* is a network"):
        photo_spec(model, "m0", None, "stack's fold-0")


def open_run_model(folder):
    from mangograde.runs import open_run

    return open_run(folder).bundles(0)[0].model


def _cycle(copy):
    """A forest whose first split's left child points back at its root: a loop."""
    from mangograde.graders import sha256

    with np.load(copy / "model.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}
    left = arrays["m0.classifier.left"]
    left[np.flatnonzero(arrays["m0.classifier.feature"] >= 0)[0]] = 0
    np.savez(copy / "model.npz", **arrays)
    manifest = json.loads((copy / "grader.json").read_text())
    manifest["files"]["model.npz"] = sha256(copy / "model.npz")
    return manifest


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.update(model="../other/model.npz"), "'model'"),
        (lambda m: m.update(engine="tensorflow"), "'engine'"),
        (lambda m: m.update(format_version=3), "format 3"),
        (lambda m: m.update(precision="int8"), "'precision'"),
        (lambda m: m.update(files={"model.onnx": "0" * 64}), "'files'"),
        (lambda m: m.update(temperature=float("nan")), "'temperature'"),
        (lambda m: m.update(grades=["A", "A", "A"]), "'grades'"),
        (lambda m: m.pop("members"), "'members' is missing"),
        (lambda m: m["members"][0]["features"].update(kind="sift"), "'members[0].features.kind'"),
        (lambda m: m["members"][0]["features"].update(size=-3), "'members[0].features.size'"),
        (lambda m: m["members"][0].update(grades_by="svc-votes"), "'members[0].grades_by'"),
        (lambda m: m["members"][1].update(classes=[0, 7]), "'members[1].classes'"),
        (lambda m: m["members"][0]["classifier"].update(feature="m1.classifier.proba"),
         "'members[0].classifier.feature'"),
        (lambda m: m["members"][0]["classifier"].update(n_features=True),
         "'members[0].classifier.n_features'"),
        (lambda m: m["bundles"][0].update(members=[5]), "'bundles'"),
        ("cycle", "'members[0].classifier.left'"),
    ],
)  # fmt: skip
def test_a_classical_grader_json_that_lies_is_refused_naming_the_field(
    synth, exports, tmp_path, edit, named
):
    copy = tmp_path / "e"
    shutil.copytree(exports["rf"], copy)
    manifest = json.loads((copy / "grader.json").read_text())
    if edit == "cycle":
        manifest = _cycle(copy)
    else:
        edit(manifest)
    (copy / "grader.json").write_text(json.dumps(manifest))
    done = run("predict", copy, synth / "dev", "--out", tmp_path / "p.csv")
    assert_clean_failure(done, named)
    assert "Traceback" not in done.output and not (tmp_path / "p.csv").exists()


def test_the_numpy_polar_warp_gives_the_numba_warps_bytes():
    """The slim install has no Numba: its polar photos must be the same bytes."""
    from mangograde.features import polar_warp

    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
    for half in (False, True):
        rows = 24 // 2 if half else 24
        indices, weights = polar_warp._sampling(40, 56, 24, rows)
        flat = photos.reshape(3, -1, 3)
        ours, theirs = (np.empty((3, rows * 24, 3), np.uint8) for _ in range(2))
        polar_warp._warp_numpy(flat, indices, weights, ours)
        polar_warp._warp(flat, indices, weights, theirs)  # Numba, where it is installed
        assert np.array_equal(ours, theirs)
