"""The graders ``predict`` and ``serve`` use: a run folder's :class:`RunPredictor`, or an
exported run (``mangograde export``) graded with ONNX Runtime, numpy and Pillow only.

An export folder holds ``model.onnx`` and ``grader.json``. The graph takes the photos as
decoded at the run's geometry (uint8 ``(N, R, R, 3)``) and returns every fold model's
probabilities ``(N, models, grades)``: the crop, normalisation and flip TTA are inside it.
``grader.json`` says how the models grade together, the same rule as :class:`RunPredictor`.
Nothing here imports torch, scikit-learn or numba.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import MangogradeError, first_line
from ..evaluation.decisions import GradingRule
from ..evaluation.familiarity import Familiarity
from ..evaluation.grader_checks import FamiliarGrader
from ..images.geometry import read_geometry
from .not_a_fruit_export import read_not_a_fruit
from .schema import MODEL_FILE, check_graph, check_manifest, engine_of

GRADER_FILE = "grader.json"
FORMAT = "mangograde-export"
FORMAT_VERSION = 2  # the newest this reads: 1, an ONNX graph; 2, a classical run's arrays
ONNX_FORMAT_VERSION = 1  # ONNX exports are still written as 1: any mangograde reads them


class ExportError(MangogradeError):
    """An export folder that cannot be used as it is."""


def is_export(folder: str | Path) -> bool:
    return (Path(folder) / GRADER_FILE).is_file()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(
    folder: Path, check: Callable[[dict[str, Any], Path], None] | None = None
) -> dict[str, Any]:
    """``grader.json``, checked: its format, its version, its fields (``check``: an
    engine's own check, default :func:`check_manifest`) and every file's SHA-256."""
    try:
        manifest = json.loads((folder / GRADER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{folder / GRADER_FILE} cannot be read ({exc}).") from None
    except RecursionError:
        raise ExportError(f"{folder / GRADER_FILE} is nested too deeply to be one.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"{folder / GRADER_FILE} is not a mangograde export's grader.json.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(
            f"{folder} was exported in format {version!r}; this mangograde reads format "
            f"{FORMAT_VERSION} and older. Upgrade mangograde on this machine, or export the "
            "run again with this version."
        )
    (check or check_manifest)(manifest, folder / GRADER_FILE)
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise ExportError(f"{path} is missing: copy the whole export folder.")
        if sha256(path) != expected:
            raise ExportError(
                f"{path} is not the file that was exported (its SHA-256 differs): it was "
                "changed or damaged. Copy the export again from where it was made."
            )
    return manifest


class ExportedGrader(FamiliarGrader):
    """Grades decoded photos with an export folder; the interface of RunPredictor."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self._setup()
        if engine_of(self.manifest) != "onnx":
            raise ExportError(
                f"{self.folder} is graded with {engine_of(self.manifest)}, not ONNX Runtime: "
                "open it with mangograde.graders.open_grader."
            )
        self._open_session(threads)
        self._set_familiarity(self._read_familiarity())
        self._set_not_a_fruit(read_not_a_fruit(self.folder, self.manifest))

    def _setup(self) -> None:
        """What every export's grader.json says: grades, geometry, bundles and the rule."""
        self.grades = tuple(self.manifest["grades"])
        geometry = read_geometry(self.manifest["geometry"])
        if geometry is None:
            raise ExportError(f"{GRADER_FILE}: unknown geometry {self.manifest['geometry']!r}.")
        self.geometry = geometry
        self.bundles = self.manifest["bundles"]
        self.rule = GradingRule(
            self.manifest.get("decision", "argmax"),
            self.manifest.get("temperature") or None,
            self.manifest.get("abstain"),
            self.manifest.get("fruit_rule", "mean"),
            self.manifest.get("fruit_temperature") or None,
        )
        self.notices: list[str] = []

    def _open_session(self, threads: int | None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ExportError(
                "Grading an export needs ONNX Runtime: pip install 'mangograde[grade]'."
            ) from None
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's own error classes
            raise ExportError(
                f"{self.folder / MODEL_FILE} cannot be loaded by ONNX Runtime ({first_line(exc)})."
            ) from None
        check_graph(self.session, self.manifest, self.folder / MODEL_FILE)

    def _read_familiarity(self) -> Familiarity | None:
        """The bundles' familiarity models (exports made before familiarity, or of runs
        without it, have none)."""
        found = self.manifest.get("familiarity")
        if not found:
            return None
        outputs = [o.name for o in self.session.get_outputs()]
        widths = found.get("member_features")
        if outputs != ["probabilities", "features"] or not isinstance(widths, list):
            raise ExportError(
                f"{self.folder / GRADER_FILE} names a familiarity model, but its graph gives "
                "no features to score: export the run again."
            )
        try:
            with np.load(self.folder / found["file"], allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(
                f"{self.folder}: its familiarity file cannot be read ({exc})."
            ) from None
        familiarity = Familiarity.from_arrays(arrays, len(self.bundles))
        ends = np.cumsum([0, *widths])
        self._feature_slices = [
            np.concatenate([np.arange(ends[m], ends[m + 1]) for m in bundle["members"]])
            for bundle in self.bundles
        ]
        return familiarity

    @property
    def family(self) -> str:
        return str(self.manifest["source"]["family"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("source_run", self.folder.name))

    def _run(self, images: np.ndarray, features: bool) -> list[np.ndarray]:
        """The graph's probabilities ``(N, models, grades)`` (and, with ``features``, its
        features ``(N, width)``), in batches of 64."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        names = ["probabilities", "features"] if features else ["probabilities"]
        parts = [self.session.run(names, {"photos": images[i : i + 64]})
                 for i in range(0, len(images), 64)]  # fmt: skip
        if not parts:
            members = len(self.manifest["members"])
            return [np.zeros((0, members, len(self.grades)), dtype=np.float32)] * len(names)
        return [np.concatenate([p[k] for p in parts]) for k in range(len(names))]

    @property
    def model_sha256(self) -> str:
        """The SHA-256 of the export's graph."""
        return str(self.manifest["files"][MODEL_FILE])

    def member_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(N, models, grades)`` from the graph, in batches of 64."""
        return self._run(images, False)[0]

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and grade codes, by the run's rule: each bundle's mean or vote
        over its members, then the mean over bundles (one bundle: its own rule)."""
        return self._graded(self.member_probabilities(images))

    def grade_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """:meth:`grade`, and each bundle's familiarity scores ``(n_bundles, N)`` (None
        without familiarity), from one run of the graph."""
        if self.familiarity is None:
            return (*self.grade(images), None)
        members, features = self._run(images, True)
        own = [features[:, columns] for columns in self._feature_slices]
        return (*self._graded(members), self.familiarity.scores(own))

    def _folds(self, found: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each bundle's probabilities (its members' mean, or their vote) and grade codes,
        from the members' ``(N, models, grades)``."""
        members = found.astype(np.float64).transpose(1, 0, 2)
        probabilities, codes = [], []
        for bundle in self.bundles:
            own = members[bundle["members"]]
            mean = own.mean(axis=0)
            if bundle["voting"] == "vote":
                shares = np.eye(len(self.grades))[own.argmax(axis=2)].mean(axis=0)
                probabilities.append(shares)
                codes.append((shares * len(own) + mean / 2).argmax(axis=1))
            else:
                probabilities.append(mean)
                codes.append(mean.argmax(axis=1))
        return probabilities, codes

    def _graded(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, codes = self._folds(found)
        proba = self.rule.calibrated(np.mean(probabilities, axis=0))
        return proba, self.rule.grades(proba, (lambda: codes[0]) if len(codes) == 1 else None)

    def fold_outputs(
        self, images: np.ndarray, features: bool
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Each fold model's probabilities ``(N, folds, grades)``, before the run's
        temperature, and (``features``) each fold model's features: what an exported
        ensemble of runs grades its members with."""
        if features and self.familiarity is None:
            raise ExportError(f"{self.folder} has no familiarity model: it gives no features.")
        found = self._run(images, features)
        folds = np.stack(self._folds(found[0])[0], axis=1)
        return folds, [found[1][:, c] for c in self._feature_slices] if features else None
