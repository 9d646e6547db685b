"""``mangograde export`` of a classical run (colour, svm, rf; a stack of them): each fold
model as plain arrays that :class:`~mangograde.graders.NumpyExportGrader` replays with
numpy, so that grading needs neither scikit-learn nor Numba nor PyTorch.

Why arrays and numpy rather than an ONNX graph (benchmarks/RESULTS.md, issue 36): the
features (colour-texture's masks and box filters, the polar warp) have no ONNX operators
and are computed by the run's own functions either way; the classifiers replayed in
numpy, in the dtypes the run used, give the run's probabilities to 1e-12 and its grades,
where float32 ONNX kernels would not (the SVM's kernel and calibration), and the forest
is walked as fast as ONNX Runtime's tree ensemble on the photos a grader sees.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.not_a_fruit import split_arrays
from ..graders import ExportError, NumpyExportGrader
from ..graders.schema import NUMPY_FILE
from ..models.blend import in_columns
from .export_not_a_fruit import write_not_a_fruit

PARITY_PHOTOS = 24
PARITY_TOLERANCE = 1e-6
NUMPY_FORMAT_VERSION = 2  # a mangograde that reads format 1 only refuses it, saying so


class _Arrays:
    """The arrays of ``model.npz``, each named after where it is used."""

    def __init__(self) -> None:
        self.found: dict[str, np.ndarray] = {}

    def add(self, name: str, array: Any) -> str:
        self.found[name] = np.ascontiguousarray(array)
        return name


def is_network(model: Any) -> bool:
    """A model that is (or holds) a network: it exports to ONNX, not to arrays."""
    return any(hasattr(m, "module_") for m in getattr(model, "estimators_", [model]))


def _features(features: Any, where: str) -> dict[str, Any]:
    from sklearn.pipeline import Pipeline

    from ..features.colour import ColourTexture
    from ..features.pixels import PixelVectors
    from ..features.polar import PolarWarp

    polar = None
    if isinstance(features, Pipeline):
        steps = [step for _, step in features.steps]
        if len(steps) != 2 or not isinstance(steps[0], PolarWarp):
            raise _unsupported(where, features)
        polar = {"size": int(steps[0].size), "half": bool(steps[0].half)}
        features = steps[1]
    if isinstance(features, PixelVectors):
        return {"kind": "pixels", "size": features.size, "dtype": features.dtype,
                "image_shape": [int(n) for n in features.image_shape_], "polar": polar}  # fmt: skip
    if isinstance(features, ColourTexture) and polar is None:
        return {"kind": "colour-texture", "size": int(features.size), "bins": int(features.bins),
                "rings": int(features.rings), "scales": [float(s) for s in features.scales],
                "saturation": float(features.saturation), "batch": int(features.batch)}  # fmt: skip
    raise _unsupported(where, features)


def _unsupported(where: str, part: Any) -> ExportError:
    return ExportError(
        f"{where} is a {type(part).__name__}, which export cannot yet write as arrays (it "
        "writes PixelVectors, PolarWarp and ColourTexture features, and forests, PCA + SVC, "
        "logistic regressions and soft votes of them). Grade this run with `mangograde "
        "predict RUN`, or report what it is made of."
    )


def _forest(forest: Any, name: str, arrays: _Arrays) -> dict[str, Any]:
    edges = getattr(forest, "bin_edges_", None)
    spec = {"kind": "forest", "n_features": int(forest.n_features_in_), "binned": edges is not None}
    for key, attribute in (("feature", "tree_feature_"), ("threshold", "tree_threshold_"),
                           ("left", "tree_left_"), ("right", "tree_right_"),
                           ("proba", "tree_proba_"), ("offsets", "tree_offsets_")):  # fmt: skip
        spec[key] = arrays.add(f"{name}.{key}", getattr(forest, attribute))
    if edges is not None:
        spec["bin_edges"] = arrays.add(f"{name}.bin_edges", edges)
    return spec


def _pca_svc(model: Any, name: str, arrays: _Arrays, where: str) -> dict[str, Any]:
    calibrated = getattr(model, "calibrated_", None)
    if calibrated is None or len(calibrated.calibrated_classifiers_) != 1:
        raise ExportError(
            f"{where}: a PCASVC without its one calibrated SVC (probability=false?) has no "
            "probabilities to grade with. Retrain with probability=true."
        )
    own = calibrated.calibrated_classifiers_[0]
    if own.method != "sigmoid":
        raise _unsupported(f"{where}'s calibration ({own.method})", own)
    svc, pca = model.svc_, model.pca_
    if svc.kernel not in ("rbf", "linear"):
        raise _unsupported(f"{where}'s kernel ({svc.kernel})", svc)
    add = arrays.add
    return {
        "kind": "pca-svc",
        "components": add(f"{name}.components", pca.components_),
        "mean": add(f"{name}.mean", pca.mean_),
        "whiten": bool(pca.whiten),
        **({"whiten_scale": add(f"{name}.whiten_scale", np.sqrt(pca.explained_variance_))}
           if pca.whiten else {}),
        "kernel": svc.kernel,
        "gamma": float(svc._gamma) if svc.kernel == "rbf" else 1.0,
        "support_vectors": add(f"{name}.support_vectors", svc.support_vectors_),
        "n_support": add(f"{name}.n_support", svc.n_support_.astype(np.int64)),
        "dual_coef": add(f"{name}.dual_coef", svc._dual_coef_),
        "intercept": add(f"{name}.intercept", svc._intercept_),
        "sigmoid_a": add(f"{name}.sigmoid_a", [float(c.a_) for c in own.calibrators]),
        "sigmoid_b": add(f"{name}.sigmoid_b", [float(c.b_) for c in own.calibrators]),
    }  # fmt: skip


def _logistic(model: Any, name: str, arrays: _Arrays, where: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else [model]
    scaler = steps[0] if len(steps) == 2 and isinstance(steps[0], StandardScaler) else None
    logistic = steps[-1]
    if len(steps) != 1 + (scaler is not None) or not isinstance(logistic, LogisticRegression):
        raise _unsupported(where, model)
    spec = {"kind": "scaled-logistic", "scaled": scaler is not None,
            "coef": arrays.add(f"{name}.coef", logistic.coef_),
            "intercept": arrays.add(f"{name}.intercept", logistic.intercept_)}  # fmt: skip
    if scaler is not None:
        d = logistic.coef_.shape[1]
        mean = scaler.mean_ if scaler.with_mean else np.zeros(d)
        scale = scaler.scale_ if scaler.with_std else np.ones(d)
        spec["scaler_mean"] = arrays.add(f"{name}.scaler_mean", mean)
        spec["scaler_scale"] = arrays.add(f"{name}.scaler_scale", scale)
    return spec


def classifier_spec(model: Any, name: str, arrays: _Arrays, where: str) -> dict[str, Any]:
    """A fitted classifier as the description :mod:`mangograde.graders.classical_models`
    reads, its arrays added to ``arrays`` under ``name``."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from ..models.classical import ReducedForest
    from ..models.forest import GroupForestClassifier
    from ..models.svm import PCASVC, GramPCA

    if isinstance(model, GroupForestClassifier):
        return _forest(model, name, arrays)
    if isinstance(model, PCASVC):
        return _pca_svc(model, name, arrays, where)
    if isinstance(model, (Pipeline, LogisticRegression)):
        return _logistic(model, name, arrays, where)
    if isinstance(model, VotingClassifier):
        if model.voting != "soft":
            raise _unsupported(f"{where} (a hard vote)", model)
        members = [classifier_spec(m, f"{name}.{i}", arrays, f"{where}'s member {i}")
                   for i, m in enumerate(model.estimators_)]  # fmt: skip
        weights = None if model.weights is None else [float(w) for w in model.weights]
        return {"kind": "soft-vote", "members": members, "weights": weights}
    if isinstance(model, ReducedForest):
        reducer, spec = model.reducer_, {"kind": "reduced-forest"}
        if reducer is None:
            spec["reducer"] = "none"
        elif isinstance(reducer, GramPCA):
            spec.update(reducer="pca", whiten=bool(reducer.whiten),
                        components=arrays.add(f"{name}.components", reducer.components_),
                        mean=arrays.add(f"{name}.mean", reducer.mean_))  # fmt: skip
            if reducer.whiten:
                scale = np.sqrt(reducer.explained_variance_)
                spec["whiten_scale"] = arrays.add(f"{name}.whiten_scale", scale)
        else:  # SelectFromModel
            columns = reducer.get_support(indices=True).astype(np.int64)
            spec.update(reducer="select", columns=arrays.add(f"{name}.columns", columns))
        spec["forest"] = _forest(model.forest_, f"{name}.forest", arrays)
        return spec
    raise _unsupported(where, model)


def photo_spec(model: Any, name: str, arrays: _Arrays, where: str) -> dict[str, Any]:
    """A fitted PhotoClassifier (or a stack of them) as a member description."""
    from ..models.classical import PhotoClassifier
    from ..models.stack import StackedGrader, decode_size
    from ..models.svm import PCASVC

    if isinstance(model, StackedGrader):
        return _stack_spec(model, name, arrays, where, decode_size)
    if not isinstance(model, PhotoClassifier):
        raise _unsupported(where, model)
    classifier = model.classifier_
    return {
        "kind": "photo",
        "classes": [int(c) for c in model.classes_],
        "features": _features(model.features_, f"{where}'s features"),
        "classifier": classifier_spec(classifier, f"{name}.classifier", arrays, where),
        "grades_by": "svc-votes" if isinstance(classifier, PCASVC) else "most-likely",
    }


def _stack_spec(model: Any, name: str, arrays: _Arrays, where: str, size: Any) -> dict[str, Any]:
    labels = model.member_labels_
    for label, member, settings in zip(labels, model.members_, model.member_settings_,
                                       strict=True):  # fmt: skip
        if is_network(member):
            raise ExportError(
                f"{where}: a stack run whose member {label} is a network "
                f"({settings['model']}) does not export: a stack exports only when every "
                "member is classical (colour, svm, rf), as arrays graded with numpy. Grade "
                "this stack with `mangograde predict RUN`, or train a stack of classical "
                "members (e.g. --set 'members=[colour-texture, svm-study, rf-study]') and "
                "export that."
            )
    meta = model.meta_
    members = [{"size": int(size(settings)),
                "model": photo_spec(m, f"{name}.{i}", arrays, f"{where}'s member {label}")}
               for i, (label, m, settings) in enumerate(
                   zip(labels, model.members_, model.member_settings_, strict=True))]  # fmt: skip
    return {
        "kind": "stack",
        "members": members,
        "meta": {"kind": "scaled-logistic", "scaled": False,
                 "coef": arrays.add(f"{name}.meta.coef", meta.coef_),
                 "intercept": arrays.add(f"{name}.meta.intercept", meta.intercept_)},
    }  # fmt: skip


def classical_members(
    loaded: list[Any], names: list[str], run_name: str, grades: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[dict[str, Any]]]:
    """Each bundle's model as a member description, the arrays, and the bundles."""
    arrays = _Arrays()
    members, bundles = [], []
    for number, (bundle, name) in enumerate(zip(loaded, names, strict=True)):
        where = f"{run_name}'s {name}"
        if hasattr(bundle.model, "members_") and list(bundle.model.classes_) != list(range(grades)):
            raise ExportError(
                f"{where} is a stack trained on some of the {grades} grades only: it does "
                "not export. Retrain it with photos of every grade in each fold."
            )
        members.append(photo_spec(bundle.model, f"m{number}", arrays, where))
        bundles.append({"name": name, "members": [number], "voting": "mean"})
    return members, arrays.found, bundles


def parity(
    loaded: list[Any], grader: NumpyExportGrader, shape: tuple[int, ...], grades: int
) -> float:
    """Largest probability difference between the run's models and the export's on fixed
    random photos; an SVM's own grades must be the same too."""
    photos = np.random.default_rng(0).integers(0, 256, (PARITY_PHOTOS, *shape), np.uint8)
    members = grader.member_probabilities(photos)
    worst = 0.0
    for number, bundle in enumerate(loaded):
        model = bundle.model
        ours = in_columns(model.predict_proba(photos), model.classes_, np.arange(grades))
        worst = max(worst, float(np.abs(members[:, number] - ours).max()))
        exported = grader.members[number]
        own = exported.own(exported.vectors(photos))
        if own is not None and list(own) != list(model.predict(photos)):
            raise ExportError(
                "The export's SVM grades differ from the run's on the same photos: the "
                "export is not trustworthy; please report it."
            )
    return worst


def _familiarity(loaded: list[Any], stage: Path) -> dict[str, Any] | None:
    """Each bundle's familiarity model as plain arrays in ``familiarity.npz``, and what
    grader.json says of it; None when a bundle has none (a stack has none)."""
    from ..evaluation.familiarity import METHOD, Familiarity, FamiliarityModel
    from ..models.bundle import FAMILIARITY_FILE

    arrays = [split_arrays(b.familiarity)[0] for b in loaded]
    if any(a is None for a in arrays) or any(hasattr(b.model, "members_") for b in loaded):
        return None
    models = tuple(FamiliarityModel.from_arrays(a) for a in arrays)
    familiarity = Familiarity(models)
    np.savez(stage / FAMILIARITY_FILE, **familiarity.arrays())
    return {
        "file": FAMILIARITY_FILE,
        "method": METHOD,
        "member_features": [int(m.center.shape[0]) for m in models],
        "threshold": familiarity.threshold,
        "reference_photos": familiarity.reference_size,
    }


def write_arrays(
    run: Any,
    loaded: list[Any],
    names: list[str],
    stage: Path,
    common: dict[str, Any],
    write_manifest: Callable[[Path, dict[str, Any]], None],
) -> dict[str, Any]:
    """Write ``model.npz``, ``familiarity.npz`` and ``grader.json`` (``common``: what every
    export says of its run) into ``stage``, check the export grades the parity photos as
    the run does, and return grader.json's contents."""
    from ..graders import FORMAT, NumpyExportGrader

    grades = len(run.grades)
    members, arrays, bundles = classical_members(loaded, names, run.name, grades)
    np.savez(stage / NUMPY_FILE, **arrays)
    manifest = {
        "format": FORMAT,
        "format_version": NUMPY_FORMAT_VERSION,
        "engine": "numpy",
        "model": NUMPY_FILE,
        **common,
        "members": members,
        "bundles": bundles,
        "precision": "run",
        "familiarity": _familiarity(loaded, stage),
        "not_a_fruit": write_not_a_fruit(loaded, stage),
        "versions": versions(members),
    }
    write_manifest(stage, manifest)
    drift = parity(loaded, NumpyExportGrader(stage), tuple(run_shape(loaded)), grades)
    if drift > PARITY_TOLERANCE:
        raise ExportError(
            f"The export's probabilities differ from the run's by {drift:.2e} on the same "
            f"photos (over {PARITY_TOLERANCE}): it is not trustworthy; please report it."
        )
    manifest["parity_max_abs_diff"] = drift
    write_manifest(stage, manifest)
    return manifest


def run_shape(loaded: list[Any]) -> tuple[int, ...]:
    """The shape photos are decoded at for the run's bundles."""
    from ..images.geometry import read_geometry

    geometry = read_geometry(loaded[0].manifest["preprocessing"]["geometry"])
    assert geometry is not None  # the run opened, so its geometry was read already
    return geometry.shape


def versions(members: list[dict[str, Any]]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    found = {"mangograde": __version__, "numpy": np.__version__}
    text = repr(members)
    for name in ("pillow", "scipy") if "colour-texture" in text else ("pillow",):
        with suppress(PackageNotFoundError):
            found[name] = version(name)
    return found
