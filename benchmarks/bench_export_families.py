"""Issue 36: every family exports. Each run is exported, then the export and its run grade
the same decoded photos in this process.

    python benchmarks/bench_export_families.py RUN [RUN...] [--photos DIR] [--parts]

Prints, per run: the photos graded with the same grade (of all), the largest probability
difference, photos per second of the run (``RunPredictor``) and of the export
(``NumpyExportGrader``), both through ``grade_and_score`` (probabilities, grades and
familiarity, as ``predict`` asks), best of 3 on the photos decoded once.

``--parts`` also measures, on fold 0, each part of the classifier against an ONNX
Runtime graph of it: the forest as an ONNX-ML TreeEnsembleClassifier built from the
forest's own arrays; PCA + SVC and the scaled logistic regression through skl2onnx 1.20
(imported when installed, e.g. ``pip install --target DIR skl2onnx`` and PYTHONPATH=DIR).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def _best(function: Any, repeats: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def _forest_graph(forest: Any) -> bytes:
    """An ONNX-ML TreeEnsembleClassifier of a GroupForestClassifier's flat arrays."""
    from onnx import TensorProto, helper

    offsets = forest.tree_offsets_
    tree = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    local = np.arange(len(tree)) - offsets[tree]
    leaf = forest.tree_feature_ < 0
    k = forest.tree_proba_.shape[1]
    weights = forest.tree_proba_[leaf] / forest.n_trees_
    node = helper.make_node(
        "TreeEnsembleClassifier", ["x"], ["label", "probabilities"], domain="ai.onnx.ml",
        nodes_treeids=tree.tolist(), nodes_nodeids=local.tolist(),
        nodes_featureids=np.maximum(forest.tree_feature_, 0).tolist(),
        nodes_modes=["LEAF" if f else "BRANCH_LEQ" for f in leaf],
        nodes_values=forest.tree_threshold_.astype(float).tolist(),
        nodes_truenodeids=np.where(leaf, 0, forest.tree_left_).tolist(),
        nodes_falsenodeids=np.where(leaf, 0, forest.tree_right_).tolist(),
        class_treeids=np.repeat(tree[leaf], k).tolist(),
        class_nodeids=np.repeat(local[leaf], k).tolist(),
        class_ids=np.tile(np.arange(k), leaf.sum()).tolist(),
        class_weights=weights.ravel().tolist(), classlabels_int64s=list(range(k)),
        post_transform="NONE",
    )  # fmt: skip
    graph = helper.make_graph(
        [node], "forest",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, forest.n_features_in_])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, k])],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _session(model: bytes) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])


def _onnx_part(classifier: Any, vectors: np.ndarray) -> tuple[str, Any, Any] | None:
    """(what, a function grading ``vectors`` with ONNX Runtime, the reference function)."""
    from sklearn.ensemble import VotingClassifier

    from mangograde.models.forest import GroupForestClassifier
    from mangograde.models.svm import PCASVC

    if isinstance(classifier, GroupForestClassifier):
        session = _session(_forest_graph(classifier))
        x = np.asarray(vectors, np.float32)
        if classifier.bin_edges_ is not None:
            from mangograde.models.forest import _binned

            x = _binned(np.asarray(vectors, np.float64), classifier.bin_edges_).astype(np.float32)
        return ("forest (TreeEnsembleClassifier)",
                lambda: session.run(["probabilities"], {"x": x})[0],
                classifier.predict_proba)  # fmt: skip
    try:
        from skl2onnx import to_onnx
    except ImportError:
        return None
    if isinstance(classifier, PCASVC):
        reduced = classifier.pca_.transform(vectors).astype(np.float64)
        model = to_onnx(classifier.calibrated_, reduced[:1], options={"zipmap": False})
        session = _session(model.SerializeToString())
        name = session.get_outputs()[1].name
        return ("SVC + sigmoid calibration (skl2onnx, double input)",
                lambda: session.run([name], {session.get_inputs()[0].name: reduced})[0],
                lambda x: classifier.calibrated_.predict_proba(reduced))  # fmt: skip
    if isinstance(classifier, VotingClassifier):
        logistic = classifier.estimators_[0]
        model = to_onnx(logistic, np.asarray(vectors[:1], np.float32), options={"zipmap": False})
        session = _session(model.SerializeToString())
        name = session.get_outputs()[1].name
        x = np.asarray(vectors, np.float32)
        return ("scaler + logistic regression (skl2onnx)",
                lambda: session.run([name], {session.get_inputs()[0].name: x})[0],
                logistic.predict_proba)  # fmt: skip
    return None


def _numpy_parts(grader: Any, model: Any, vectors: np.ndarray) -> list[tuple[str, Any, Any]]:
    """The export's own numpy parts with the run's estimators they replay."""
    classifier = grader.members[0].classifier
    theirs = model.classifier_
    parts = [("whole classifier (numpy)", lambda: classifier(vectors), theirs.predict_proba)]
    if hasattr(classifier, "members"):  # a soft vote: each member
        for number, (mine, own) in enumerate(
            zip(classifier.members, theirs.estimators_, strict=True)
        ):
            label = f"vote member {number}: {type(mine).__name__} (numpy)"
            parts.append((label, lambda m=mine: m(vectors), own.predict_proba))
    return parts


def _parts(run: Path, export: Path, images: np.ndarray) -> None:
    from mangograde.graders import open_grader
    from mangograde.runs import open_run

    grader = open_grader(export)
    model = open_run(run).bundles(0)[0].model
    member = grader.members[0]
    seconds, vectors = _best(lambda: member.vectors(images), 1)
    theirs, reference = _best(lambda: model.transform_photos(images), 1)
    same = np.array_equal(vectors, reference)
    print(f"  fold 0 features: export {seconds:.2f} s, run {theirs:.2f} s; identical: {same}")
    found = _numpy_parts(grader, model, vectors)
    from sklearn.ensemble import VotingClassifier

    classifier = model.classifier_
    onnx = [_onnx_part(classifier, vectors)]
    if isinstance(classifier, VotingClassifier):
        onnx = [_onnx_part(c, vectors) for c in classifier.estimators_]
    for what, function, truth in [*found, *[o for o in onnx if o is not None]]:
        seconds, proba = _best(function)
        reference, expected = _best(lambda t=truth: t(vectors))
        diff = float(np.abs(np.asarray(proba, np.float64) - expected).max())
        print(f"  {what}: {len(images) / seconds:,.0f} photos/s (the run's "
              f"{len(images) / reference:,.0f}), max |dp| vs the run {diff:.1e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--parts", action="store_true")
    args = parser.parse_args()
    from mangograde.data import find_photos
    from mangograde.graders import open_grader
    from mangograde.images import load_images
    from mangograde.workflows.export import export_run

    photos, _, _ = find_photos([args.photos or data_dir("mango-grading")])
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}; {len(photos)} photos")
    for run in args.runs:
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            export = export_run(run, Path(work) / "export", progress=False).out
            made = time.perf_counter() - start
            size = sum(f.stat().st_size for f in export.iterdir()) / 1e6
            ours, theirs = open_grader(run), open_grader(export)
            images = load_images(photos, ours.geometry).arrays
            ours.grade_and_score(images[:4])  # first calls: imports, caches, Numba
            theirs.grade_and_score(images[:4])
            t_run, (p_run, c_run, s_run) = _best(lambda g=ours, x=images: g.grade_and_score(x))
            t_exp, (p_exp, c_exp, s_exp) = _best(lambda g=theirs, x=images: g.grade_and_score(x))
            same = int(np.sum(c_run == c_exp))
            relative = None if s_run is None else np.max(np.abs(s_exp - s_run) / s_run)
            scores = "" if relative is None else f", familiarity max rel. diff {relative:.1e}"
            print(
                f"{run.name} ({theirs.family}, {len(theirs.bundles)} folds): export {made:.1f} s, "
                f"{size:.0f} MB; same grade {same}/{len(images)}, max |dp| "
                f"{np.abs(p_exp - p_run).max():.1e}{scores}; run {len(images) / t_run:,.0f} "
                f"photos/s, export {len(images) / t_exp:,.0f} photos/s, ratio "
                f"{t_run / t_exp:.2f}"
            )
            if args.parts:
                _parts(run, export, images)


if __name__ == "__main__":
    main()
