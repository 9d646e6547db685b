"""mangograde export: ONNX graphs that grade like the run, without PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from .service_helpers import train_tiny  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402
from .test_cli_models import read_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the [grade] extra; scipy for colour-texture features (ndimage's labels, hole filling and
# box filters, which the run's features are computed with)
SLIM = ["numpy", "pillow", "onnxruntime", "scipy", "typer", "rich"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("export") / "s", n=40, size=48, seed=2)


@pytest.fixture(scope="module")
def cnn_run(synth, tmp_path_factory):
    return train_tiny(synth, tmp_path_factory.mktemp("runs") / "cnn")


@pytest.fixture(scope="module")
def export_checked(synth, cnn_run, tmp_path_factory):
    """The run's export, checked on the training photos in grade folders, and what it said.
    One export serves the tests of the graph and of --check's grade folders: each export
    of the flipping CNN takes ~15 s, and --check only grades the written graph."""
    import shutil

    base = tmp_path_factory.mktemp("exports")
    folders = base / "graded"
    for row in read_csv(synth / "train.csv"):
        (folders / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(synth / "train" / row["image_id"], folders / row["label"])
    out = base / "fp32"
    result = run("export", cnn_run, "--format", "onnx", "--check", folders, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def exported(export_checked):
    return export_checked[0]


def probabilities(csv):
    rows = read_csv(csv)
    return (
        [r["image_id"] for r in rows],
        [r["label"] for r in rows],
        np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows]),
    )


def photos(synth):
    return [synth / "train", synth / "dev"]  # 40 photos


def test_the_export_grades_as_the_run_does(synth, cnn_run, exported, tmp_path):
    manifest = json.loads((exported / "grader.json").read_text())
    assert manifest["grades"] == ["A", "B", "C"] and len(manifest["members"]) == 2
    assert manifest["bundles"][0]["voting"] == "mean" and manifest["precision"] == "fp32"
    assert manifest["parity_max_abs_diff"] < 1e-4
    import onnx

    onnx.checker.check_model(onnx.load(str(exported / "model.onnx")))
    assert run("predict", cnn_run, *photos(synth), "--out", tmp_path / "run.csv").exit_code == 0
    done = run("predict", exported, *photos(synth), "--out", tmp_path / "onnx.csv")
    assert done.exit_code == 0, done.output
    ids, labels, theirs = probabilities(tmp_path / "onnx.csv")
    ids2, labels2, ours = probabilities(tmp_path / "run.csv")
    assert ids == ids2 and labels == labels2 and len(ids) >= 32
    assert np.abs(theirs - ours).max() < 1e-4
    # the graph also gives the features: the same familiarity scores and flags as the run
    familiarity = manifest["familiarity"]
    assert familiarity["file"] in manifest["files"] and len(familiarity["member_features"]) == 2
    scores = [[float(r["familiarity"]) for r in read_csv(tmp_path / f)]
              for f in ("onnx.csv", "run.csv")]  # fmt: skip
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-3)
    reasons = [[r["reason"] for r in read_csv(tmp_path / f)] for f in ("onnx.csv", "run.csv")]
    assert reasons[0] == reasons[1]


def test_one_fold_and_int8_with_accuracy_before_and_after(synth, cnn_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MANGOGRADE_QUIET")  # the export's steps, as a log shows them
    out = tmp_path / "int8"
    labels = synth / "train.csv"
    result = run("export", cnn_run, "--fold", "1", "--int8", "--calibration", synth / "dev",
                 "--check", synth / "train", "--labels", labels, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fp32:" in result.output and "int8:" in result.output
    assert "Exporting: 2/7" in result.output and "Exporting: 7/7 (100%)" in result.output
    manifest = json.loads((out / "grader.json").read_text())
    assert manifest["precision"] == "int8" and manifest["fold_rule"] == "fold 1 alone"
    # the int8 graph's own distance from PyTorch, on the --check photos, not fp32's
    agreed = manifest["int8_agreement"]
    checked = len(list((synth / "train").glob("*.png")) + list((synth / "train").glob("*.jpg")))
    assert agreed["on"] == "check" and agreed["photos"] == checked
    assert agreed["max_abs_diff"] > manifest["parity_max_abs_diff"]
    assert 0.0 <= agreed["label_agreement"] <= 1.0
    assert f"up to {agreed['max_abs_diff']:.3f} from PyTorch's" in result.output
    import onnx

    kinds = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    assert "QuantizeLinear" in kinds and "DequantizeLinear" in kinds
    done = run("predict", out, synth / "train", "--out", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    assert run("predict", out, synth / "train", "--fold", "0", "--out", tmp_path / "q.csv")\
        .exit_code == 1  # fmt: skip


def test_evaluate_measures_an_export_as_it_measures_its_run(synth, cnn_run, exported, tmp_path):
    labelled = [synth / "train", "--labels", synth / "train.csv", "--bootstrap", "20"]
    ours = run("evaluate", cnn_run, *labelled, "--out", tmp_path / "run.json")
    theirs = run("evaluate", exported, *labelled, "--out", tmp_path / "export.json")
    assert theirs.exit_code == 0, theirs.output
    assert "export of" in theirs.output
    records = [json.loads((tmp_path / f).read_text()) for f in ("run.json", "export.json")]
    assert ours.exit_code == 0 and records[0]["n_photos"] == records[1]["n_photos"] >= 30
    assert records[1]["metrics"]["accuracy"] == records[0]["metrics"]["accuracy"]
    assert read_csv(tmp_path / "run.csv") == read_csv(tmp_path / "export.csv") or np.allclose(
        probabilities(tmp_path / "run.csv")[2], probabilities(tmp_path / "export.csv")[2],
        atol=1e-4,
    )  # fmt: skip


def test_check_takes_grade_folders(synth, cnn_run, export_checked, tmp_path):
    output = export_checked[1]  # exported with --check grade folders
    assert "Accuracy on" in output and "fp32:" in output
    unlabelled = run("export", cnn_run, "--check", synth / "dev", "--out", tmp_path / "u")
    assert_clean_failure(unlabelled, "holds no grades")


def test_refusals(synth, cnn_run, exported, tmp_path):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(exported, tampered)
    with open(tampered / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    out = tmp_path / "p.csv"
    assert_clean_failure(run("predict", tampered, synth / "dev", "--out", out), "SHA-256 differs")
    newer = tmp_path / "newer"
    shutil.copytree(exported, newer)
    manifest = json.loads((newer / "grader.json").read_text())
    manifest["format_version"] = 99
    (newer / "grader.json").write_text(json.dumps(manifest))
    assert_clean_failure(run("predict", newer, synth / "dev", "--out", out), "format 99")
    svm = train_tiny(synth, tmp_path / "svm", "--model", "svm", "--cv", "2")
    refused = run("export", svm, "--int8", "--calibration", synth / "dev", "--out", tmp_path / "e")
    assert_clean_failure(refused, "svm run", "Drop --int8")  # its arrays: nothing to quantise
    assert not (tmp_path / "e").exists() and not out.exists()
    again = run("export", exported.parent / "nowhere", "--out", exported)
    assert_clean_failure(again, "not empty")
    for opset in ("16", "99999"):
        wrong = run("export", cnn_run, "--opset", opset, "--out", tmp_path / f"o{opset}")
        assert_clean_failure(wrong, f"got {opset}")
        assert not (tmp_path / f"o{opset}").exists()


def test_serve_grades_with_an_export(synth, exported):
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    with TestClient(create_app(ServeOptions(run=exported))) as client:
        info = client.get("/v1/model").json()
        assert info["run"] == "cnn" and "ONNX fp32 export" in info["fold_rule"]
        photo = (synth / "dev" / sorted(os.listdir(synth / "dev"))[0]).read_bytes()
        answer = client.post("/v1/grade", files=[("files", ("a.jpg", photo))]).json()
        assert answer["results"][0]["grade"] in ("A", "B", "C")


def test_a_slim_install_grades_an_export_without_torch(synth, cnn_run, exported, tmp_path):
    """A venv with only the [grade] packages (pip's cache serves them) and mangograde's
    source on the path: torch, scikit-learn, numba and lime cannot be imported there. It
    grades a CNN export (ONNX) and classical ones (numpy: colour-texture features, and
    polar-warped pixels without Numba) as the full install does."""
    classical = []
    for family, recipe in (
        ("colour", ["--set", "features.size=64", "--set", "n_estimators=10"]),
        ("svm", ["--set", "features.size=24", "--set", "n_components=8"]),
    ):
        trained = train_tiny(synth, tmp_path / family, "--model", family, "--cv", "2", *recipe)
        done = run("export", trained, "--out", tmp_path / f"{family}-export")
        assert done.exit_code == 0, done.output
        classical.append(tmp_path / f"{family}-export")
    from importlib.metadata import version

    env_dir = tmp_path / "slim"
    # pip 22.3+ installs into another environment (--python): no ensurepip there
    ours = tuple(int(p) for p in version("pip").split(".")[:2] if p.isdigit()) >= (22, 3)
    venv.create(env_dir, with_pip=not ours)
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python] if ours else [python, "-m", "pip"]
    # --no-compile: Python compiles what predict imports, not all of scipy up front
    install = subprocess.run([*pip, "install", "-q", "--no-compile", *SLIM],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    if install.returncode != 0:
        pytest.skip(f"pip could not install the slim packages here: {install.stderr[-300:]}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    absent = "import importlib.util as u; print([m for m in ('torch', 'sklearn', 'numba', " \
             "'lime', 'yaml') if u.find_spec(m)])"  # fmt: skip
    found = subprocess.run([python, "-c", absent], capture_output=True, text=True, env=env)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    for number, export in enumerate([exported, *classical]):
        csv, full = tmp_path / f"slim{number}.csv", tmp_path / f"full{number}.csv"
        graded = subprocess.run(
            [python, "-m", "mangograde", "predict", export, *photos(synth), "--out", csv],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert run("predict", export, *photos(synth), "--out", full).exit_code == 0
        assert csv.read_text() == full.read_text()


def _foreign_graph(path):
    """An ONNX graph that takes "photos" and gives "probabilities", but not the export's."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["photos"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
        helper.make_node("Softmax", ["y"], ["probabilities"], axis=-1),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    graph = helper.make_graph(
        nodes, "foreign",
        [helper.make_tensor_value_info("photos", TensorProto.UINT8, ["n", 4, 4, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 3])],
        [axes],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.update(model="../other/model.onnx"), "'model'"),
        (lambda m: m.update(files={}), "'files'"),
        (lambda m: m.update(temperature=float("nan")), "'temperature'"),
        (lambda m: m.update(temperature=-1), "'temperature'"),
        (lambda m: m.update(grades=["A", "A", "A"]), "'grades'"),
        (lambda m: m.update(grades=["<b>A</b>", "B", "C"]), "'grades'"),
        (lambda m: m.update(grades=["A", "B"]), "not the graph that was exported"),
        (lambda m: m.update(abstain=2), "'abstain'"),
        (lambda m: m.pop("source"), "'source' is missing"),
        (lambda m: m.pop("fold_rule"), "'fold_rule' is missing"),
        (lambda m: m.pop("precision"), "'precision' is missing"),
        (lambda m: m["bundles"][0].update(members=[7]), "'bundles'"),
        ("deep", "nested too deeply"),
        ("foreign", "not the graph that was exported"),
    ],
)
def test_a_grader_json_that_lies_is_refused_naming_the_field(synth, exported, tmp_path, edit,
                                                              named):  # fmt: skip
    import shutil

    from mangograde.graders import sha256

    copy = tmp_path / "e"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "grader.json").read_text())
    if edit == "deep":
        (copy / "grader.json").write_text("[" * 200_000)
    else:
        if edit == "foreign":
            _foreign_graph(copy / "model.onnx")
            manifest["files"]["model.onnx"] = sha256(copy / "model.onnx")
        else:
            edit(manifest)
        (copy / "grader.json").write_text(json.dumps(manifest))
    done = run("predict", copy, synth / "dev", "--out", tmp_path / "p.csv")
    assert_clean_failure(done, named)
    assert "Traceback" not in done.output and not (tmp_path / "p.csv").exists()
