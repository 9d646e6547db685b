"""An exported classical run (colour, svm, rf, or a stack of them) graded with numpy.

The export folder holds ``grader.json`` (``engine: numpy``, format 2: each fold model
described field by field, see :mod:`.classical_models`), ``model.npz`` (their arrays)
and, where the run has one, ``familiarity.npz``. The photos' features are computed by the
functions the run's transformers call, and the classifiers replayed in numpy, so an
export grades as its run does without scikit-learn, Numba or PyTorch (colour-texture
features need scipy's ``ndimage``, which the ``grade`` extra installs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.familiarity import Familiarity
from .classical_models import Reader, read_member
from .exported import GRADER_FILE, ExportedGrader, ExportError, read_manifest
from .not_a_fruit_export import read_not_a_fruit
from .schema import NUMPY_FILE, ManifestError, engine_of


class NumpyExportGrader(ExportedGrader):
    """Grades decoded photos with a classical export; the interface of RunPredictor."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if engine_of(self.manifest) != "numpy":
            raise ExportError(
                f"{self.folder} is an ONNX export: open it with mangograde.graders.open_grader."
            )
        self._setup()
        arrays = _load(self.folder / NUMPY_FILE)
        read = Reader(self.folder / GRADER_FILE, arrays)
        grades = len(self.grades)
        self.members = [read_member(m, f"members[{i}]", read, grades)
                        for i, m in enumerate(self.manifest["members"])]  # fmt: skip
        self._set_familiarity(self._read_familiarity())
        self._set_not_a_fruit(read_not_a_fruit(self.folder, self.manifest))

    def _read_familiarity(self) -> Familiarity | None:
        found = self.manifest.get("familiarity")
        if not found:
            return None
        if any(len(b["members"]) != 1 for b in self.bundles):
            raise ManifestError(
                f"{self.folder / GRADER_FILE}: field 'familiarity' needs one fold model per "
                "bundle. Export the run again."
            )
        return Familiarity.from_arrays(_load(self.folder / found["file"]), len(self.bundles))

    @property
    def model_sha256(self) -> str:
        """The SHA-256 of the export's arrays."""
        return str(self.manifest["files"][NUMPY_FILE])

    def _members(self, images: np.ndarray, features: bool) -> tuple[np.ndarray, list, list]:
        """``(N, models, grades)`` probabilities, each model's own grades (None where its
        rule is the most likely grade) and (with ``features``) each model's features."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        probabilities, own, seen = [], [], []
        made: dict[str, np.ndarray] = {}  # features computed once for the folds sharing them
        for member in self.members:
            key = member.features_key
            vectors = made.get(key) if key is not None else None
            if vectors is None:
                vectors = member.vectors(images)
                if key is not None:
                    made[key] = vectors
            probabilities.append(member.proba(vectors))
            own.append(member.own(vectors) if len(self.members) == 1 else None)
            if features:
                seen.append(member.embed(vectors))
        return np.stack(probabilities, 1), own, seen

    def member_probabilities(self, images: np.ndarray) -> np.ndarray:
        return self._members(images, False)[0]

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        members, own, _ = self._members(images, False)
        return self._own_graded(members, own)

    def grade_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        if self.familiarity is None:
            return (*self.grade(images), None)
        members, own, features = self._members(images, True)
        own_features = [features[b["members"][0]] for b in self.bundles]
        return (*self._own_graded(members, own), self.familiarity.scores(own_features))

    def fold_outputs(
        self, images: np.ndarray, features: bool
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """As :meth:`ExportedGrader.fold_outputs`."""
        if features and self.familiarity is None:
            raise ExportError(f"{self.folder} has no familiarity model: it gives no features.")
        members, _, seen = self._members(images, features)
        folds = np.stack(self._folds(members)[0], axis=1)
        return folds, [seen[b["members"][0]] for b in self.bundles] if features else None

    def _own_graded(self, members: np.ndarray, own: list) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`ExportedGrader._graded`; one model grades by its own rule (an SVM's
        vote), as :class:`~mangograde.runs.RunPredictor` grades one fold model."""
        proba, codes = self._graded(members)
        if len(own) == 1 and own[0] is not None and self.rule.decision == "argmax":
            codes = np.asarray(own[0], dtype=int)
        return proba, codes


def _load(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read ({exc}): copy the export again.") from None
