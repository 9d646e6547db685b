"""The grading core: the :class:`Grader` contract, :func:`grade_batch` and its result
:class:`Graded`, and the graders ``predict`` and ``serve`` open: a run folder's
:class:`RunPredictor` (torch and scikit-learn are imported only then), or an export
folder's :class:`ExportedGrader` (a CNN run's ONNX graph: ONNX Runtime, numpy and Pillow)
or :class:`NumpyExportGrader` (a classical run's arrays: numpy, Pillow and scipy)."""

from __future__ import annotations

from pathlib import Path

from ..basics.errors import SettingsError
from .base import Grader
from .batch import grade_batch, graded_from, score_photos
from .classical_export import NumpyExportGrader
from .exported import (
    FORMAT,
    FORMAT_VERSION,
    GRADER_FILE,
    ExportedGrader,
    ExportError,
    is_export,
    read_manifest,
    sha256,
)
from .graded import CHECK, Graded, fruit_grade_labels, photo_reasons, shares

__all__ = [
    "CHECK",
    "FORMAT",
    "FORMAT_VERSION",
    "GRADER_FILE",
    "ExportError",
    "ExportedGrader",
    "Graded",
    "Grader",
    "NumpyExportGrader",
    "fruit_grade_labels",
    "grade_batch",
    "graded_from",
    "is_export",
    "export_grader",
    "open_grader",
    "photo_reasons",
    "read_manifest",
    "score_photos",
    "sha256",
    "shares",
]


def open_grader(path: str | Path, fold: int | None = None) -> Grader:
    """The grader of a run folder (:func:`mangograde.runs.open_predictor`) or of an export
    folder (:class:`ExportedGrader` or :class:`NumpyExportGrader`, as its ``grader.json``
    says; torch is not imported then)."""
    if is_export(path):
        if fold is not None:
            raise SettingsError(
                f"{path} is an export: it grades with the fold rule it was exported with "
                "(grader.json says which). Drop --fold, or export one fold with --fold."
            )
        return export_grader(path)
    from ..runs import open_predictor

    return open_predictor(path, fold)


def export_grader(path: str | Path) -> Grader:
    """The grader of an export folder: its ``engine`` (grader.json) says which."""
    import json

    try:
        found = json.loads((Path(path) / GRADER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        found = None  # read_manifest says what is wrong with it
    engine = found.get("engine") if isinstance(found, dict) else None
    if engine == "ensemble":
        from .ensemble_export import EnsembleExportGrader

        return EnsembleExportGrader(path)
    return NumpyExportGrader(path) if engine == "numpy" else ExportedGrader(path)
