"""An exported ensemble of runs: one folder holding each member's export and the mean.

``grader.json`` (``engine: ensemble``) names each member's export folder inside it (its
``grader.json`` checksummed here, its own files checksummed there), the size its photos
are decoded at, and for each fold the member's weight and the temperature its run
calibrated that fold with; then the ensemble's own rule (temperature, abstain, fruit rule)
and its familiarity (``familiarity.npz``: each fold's members' models, a photo unfamiliar
when any member finds it so). Grading: each member's fold models' probabilities, each fold
the weighted mean of its members' (scaled by their temperatures), the mean of the folds,
then the ensemble's temperature, as :class:`~mangograde.models.ensemble.RunMean` and
:class:`~mangograde.runs.RunPredictor` grade the run. No torch, scikit-learn or numba.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.decisions import DECISIONS, GradingRule
from ..evaluation.familiarity import Familiarity
from ..evaluation.fruits import FRUIT_RULES
from ..evaluation.grader_checks import FamiliarGrader
from ..evaluation.temperature import apply_temperature
from ..features.arrays import resize_images
from ..images.geometry import Resize, read_geometry
from .exported import GRADER_FILE, ExportError, read_manifest
from .schema import ManifestError

ENGINE = "ensemble"
FORMAT_VERSION = 2
FAMILIARITY = "familiarity.npz"


def _number(value: Any, low: float, high: float) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value) and low <= value <= high


def _temperature(value: Any) -> bool:
    return value is None or (_number(value, 1e-6, 1e6))


def _member_ok(member: Any, folds: int) -> bool:
    if not isinstance(member, dict):
        return False
    folder, weights, temperatures = (member.get(k) for k in ("folder", "weights", "temperatures"))
    return (
        isinstance(folder, str) and Path(folder).name == folder and folder not in ("", ".", "..")
        and isinstance(member.get("label"), str)
        and isinstance(member.get("size"), int) and 8 <= member["size"] <= 4096
        and isinstance(weights, list) and len(weights) == folds
        and all(_number(w, 0.0, 1.0) for w in weights)
        and isinstance(temperatures, list) and len(temperatures) == folds
        and all(_temperature(t) for t in temperatures)
    )  # fmt: skip


def check_ensemble(manifest: dict[str, Any], where: Path) -> None:
    """Refuse, naming the field, anything an ensemble export does not write."""
    folds = manifest.get("folds")
    checks: list[tuple[str, bool, str]] = [
        ("folds", isinstance(folds, int) and not isinstance(folds, bool) and folds >= 1,
         "the number of fold models, 1 or more"),
        ("grades", isinstance(manifest.get("grades"), list) and len(manifest["grades"]) >= 2
         and len(set(manifest["grades"])) == len(manifest["grades"])
         and all(isinstance(g, str) and g for g in manifest["grades"]), "two or more names"),
        ("labels", manifest.get("labels") in ("ordered", "unordered"), "ordered or unordered"),
        ("geometry", isinstance(manifest.get("geometry"), dict)
         and isinstance(read_geometry(manifest["geometry"]), Resize), "a square size"),
        ("members", isinstance(manifest.get("members"), list) and len(manifest["members"]) >= 2
         and all(_member_ok(m, folds if isinstance(folds, int) else -1)
                 for m in manifest["members"]),
         "2 or more members, each a folder, label, size and a weight and temperature a fold"),
        ("decision", manifest.get("decision") in DECISIONS, " or ".join(DECISIONS)),
        ("temperature", _temperature(manifest.get("temperature")), "null or a number above 0"),
        ("abstain", manifest.get("abstain") is None or _number(manifest["abstain"], 0.0, 1.0),
         "null or 0 to 1"),
        ("fruit_rule", manifest.get("fruit_rule") in FRUIT_RULES, " or ".join(FRUIT_RULES)),
        ("fruit_temperature", _temperature(manifest.get("fruit_temperature")),
         "null or a number above 0"),
        ("source_run", isinstance(manifest.get("source_run"), str), "the run's name"),
        ("source", isinstance(manifest.get("source"), dict), "a record of the run"),
        ("files", isinstance(manifest.get("files"), dict) and all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64
            for k, v in manifest["files"].items()), "file names with their SHA-256"),
    ]  # fmt: skip
    for name, valid, expected in checks:
        if name not in manifest:
            raise ManifestError(f"{where}: field {name!r} is missing (expected {expected}).")
        if not valid:
            shown = repr(manifest[name])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ManifestError(
                f"{where}: field {name!r} is {shown}; expected {expected}. Export the "
                "ensemble again."
            )
    for number in range(manifest["folds"]):
        total = sum(m["weights"][number] for m in manifest["members"])
        if abs(total - 1) > 1e-6:
            raise ManifestError(
                f"{where}: field 'members' gives fold {number} weights summing to {total:.6f}, "
                "not 1. Export the ensemble again."
            )
    needed = {f"{m['folder']}/{GRADER_FILE}" for m in manifest["members"]}
    familiarity = manifest.get("familiarity")
    if familiarity is not None:
        if not (isinstance(familiarity, dict) and familiarity.get("file") == FAMILIARITY):
            raise ManifestError(f"{where}: field 'familiarity' must name {FAMILIARITY}.")
        needed.add(FAMILIARITY)
    if set(manifest["files"]) != needed:
        raise ManifestError(
            f"{where}: field 'files' must list {', '.join(sorted(needed))} with their SHA-256. "
            "Export the ensemble again."
        )


def is_ensemble_export(manifest: Any) -> bool:
    return isinstance(manifest, dict) and manifest.get("engine") == ENGINE


def read_ensemble_manifest(folder: Path) -> dict[str, Any]:
    """``grader.json`` of an ensemble export, checked as every export's is (format, version,
    every file's SHA-256) and field by field by :func:`check_ensemble`."""
    manifest = read_manifest(folder, check_ensemble)
    if not is_ensemble_export(manifest):
        raise ExportError(
            f"{folder / GRADER_FILE} is not a mangograde ensemble export's grader.json."
        )
    return manifest


class EnsembleExportGrader(FamiliarGrader):
    """Grades decoded photos with an ensemble export; the interface of RunPredictor."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        from . import export_grader

        self.folder = Path(folder)
        self.manifest = read_ensemble_manifest(self.folder)
        self.grades = tuple(self.manifest["grades"])
        geometry = read_geometry(self.manifest["geometry"])
        assert isinstance(geometry, Resize)  # checked with the manifest
        self.geometry = geometry
        self.rule = GradingRule(
            self.manifest["decision"],
            self.manifest["temperature"],
            self.manifest["abstain"],
            self.manifest["fruit_rule"],
            self.manifest["fruit_temperature"],
        )
        self.notices: list[str] = []
        self.members = [export_grader(self.folder / m["folder"]) for m in self.manifest["members"]]
        for grader, member in zip(self.members, self.manifest["members"], strict=True):
            if tuple(grader.grades) != self.grades or len(grader.bundles) != self.folds:
                raise ExportError(
                    f"{self.folder / member['folder']} does not grade {', '.join(self.grades)} "
                    f"with {self.folds} fold models: not the member this ensemble was "
                    "exported with. Export the ensemble again."
                )
        self.bundles = [{"members": [k], "voting": "mean"} for k in range(self.folds)]
        self._set_familiarity(self._read_familiarity())
        # the members learnt the same photos: the first one's check knows the same mangoes
        self._set_not_a_fruit(next((m.not_a_fruit for m in self.members if m.not_a_fruit), None))

    @property
    def folds(self) -> int:
        return int(self.manifest["folds"])

    @property
    def family(self) -> str:
        return "ensemble"

    @property
    def name(self) -> str:
        return str(self.manifest["source_run"])

    @property
    def model_sha256(self) -> str:
        """One SHA-256 of the files the export lists (each member's grader.json, which
        lists the member's own files)."""
        files = json.dumps(self.manifest["files"], sort_keys=True)
        return hashlib.sha256(files.encode()).hexdigest()

    def _read_familiarity(self) -> Familiarity | None:
        found = self.manifest.get("familiarity")
        if not found:
            return None
        try:
            with np.load(self.folder / FAMILIARITY, allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
            return Familiarity.from_arrays(arrays, self.folds)
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(f"{self.folder}: its familiarity cannot be read ({exc}).") from None

    def _outputs(self, images: np.ndarray, features: bool
                 ) -> tuple[np.ndarray, list[np.ndarray] | None]:  # fmt: skip
        """Each fold's weighted mean ``(N, folds, grades)`` and its members' features side
        by side, a fold each."""
        folds = np.zeros((len(images), self.folds, len(self.grades)))
        seen: list[list[np.ndarray]] = [[] for _ in range(self.folds)]
        for grader, member in zip(self.members, self.manifest["members"], strict=True):
            view = resize_images(np.ascontiguousarray(images, dtype=np.uint8), member["size"])
            proba, found = grader.fold_outputs(view, features)
            for k in range(self.folds):
                scaled = np.asarray(proba[:, k], dtype=np.float64)
                if member["temperatures"][k] is not None:
                    scaled = apply_temperature(scaled, float(member["temperatures"][k]))
                folds[:, k] += member["weights"][k] * scaled
                if found is not None:
                    seen[k].append(np.asarray(found[k], dtype=np.float64).reshape(len(images), -1))
        joined = [np.concatenate(parts, axis=1) for parts in seen] if features else None
        return folds, joined

    def member_probabilities(self, images: np.ndarray) -> np.ndarray:
        return self._outputs(images, False)[0]

    def _graded(self, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        proba = self.rule.calibrated(folds.mean(axis=1))
        return proba, self.rule.grades(proba)

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._graded(self.member_probabilities(images))

    def grade_and_score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        if self.familiarity is None:
            return (*self.grade(images), None)
        folds, features = self._outputs(images, True)
        assert features is not None
        return (*self._graded(folds), self.familiarity.scores(features))
