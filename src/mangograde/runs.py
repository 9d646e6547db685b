"""Read a run folder written by ``mangograde train``: its settings, saved results and models.

``Run`` only reads; ``RunPredictor`` grades decoded photos with the run's models (the
mean probability of its fold models, or one fold's model).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import MangogradeError, SettingsError
from .images.geometry import Geometry, Resize, ResizeCenterCrop
from .models.bundle import Bundle, load_bundle


class RunError(MangogradeError):
    """A run folder is missing, incomplete or unreadable."""


@dataclass
class HeldOut:
    """The photos a run held out, as graded by the fold model that did not see them."""

    image_ids: list[str]
    groups: list[str] | None
    folds: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray
    grades: tuple[str, ...]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"Cannot read {path}: {exc}. Retrain the run or restore the file.") from None


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []


def geometry_from_record(record: dict[str, Any]) -> Geometry:
    if record.get("kind") == "resize":
        return Resize(int(record["size"]))
    if record.get("kind") == "resize-center-crop":
        return ResizeCenterCrop(int(record["resize"]), int(record["crop"]))
    raise RunError(f"Unknown photo geometry {record!r} in a bundle; was it made by mangograde?")


@dataclass
class Run:
    """A trained run folder. Use :func:`open_run`."""

    path: Path
    settings: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_kind(self) -> str:
        return str(self.settings.get("model", "?"))

    @property
    def label(self) -> str:
        """``name (preset)``, the run's title in tables."""
        preset = self.settings.get("preset")
        return f"{self.name} ({preset})" if preset and preset != self.name else self.name

    @property
    def grades(self) -> tuple[str, ...]:
        if "grades" in self.metrics:
            return tuple(self.metrics["grades"])
        return load_bundle(self.bundle_folders()[0]).grades

    @property
    def split_text(self) -> str:
        """How the run held photos out, e.g. ``5-fold cross-validation by fruit``."""
        split = self.settings.get("split") or {}
        grouped = (self.settings.get("data") or {}).get("groups")
        kind = (
            f"hold-out of {split['val_fraction']:.0%}"
            if split.get("val_fraction")
            else f"{split.get('cv', '?')}-fold cross-validation"
        )
        return f"{kind} {'by fruit' if grouped else 'by photo (no groups given)'}"

    @property
    def data_root(self) -> Path | None:
        root = (self.settings.get("data") or {}).get("root")
        return Path(root) if root else None

    def bundle_folders(self) -> list[Path]:
        """``model/`` itself, or its ``fold-N/`` folders in fold order."""
        model = self.path / "model"
        if (model / "bundle.json").is_file():
            return [model]
        folds = [p for p in model.glob("fold-*") if (p / "bundle.json").is_file()]
        if not folds:
            raise RunError(
                f"{self.path} holds no trained model (model/bundle.json or model/fold-N/): "
                "the training did not finish. Train it again, or --resume a CNN run."
            )
        return sorted(folds, key=lambda p: int(p.name.split("-")[1]))

    def model_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path / "model").rglob("*") if p.is_file())

    @cached_property
    def held_out(self) -> HeldOut | None:
        rows = _read_rows(self.path / "predictions.csv")
        if not rows:
            return None
        grades = self.grades
        code = {g: i for i, g in enumerate(grades)}
        try:
            return HeldOut(
                image_ids=[r["image"] for r in rows],
                groups=[r["group"] for r in rows] if any(r["group"] for r in rows) else None,
                folds=np.array([int(r["fold"]) for r in rows]),
                true=np.array([code[r["true"]] for r in rows]),
                predicted=np.array([code[r["predicted"]] for r in rows]),
                proba=np.array([[float(r[f"p_{g}"]) for g in grades] for r in rows]),
                grades=grades,
            )
        except (KeyError, ValueError) as exc:
            raise RunError(
                f"{self.path / 'predictions.csv'} is not a mangograde predictions file "
                f"(problem with {exc}); retrain the run to rewrite it."
            ) from None

    def history(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for row in _read_rows(self.path / "history.csv"):
            rows.append({k: _number(v) for k, v in row.items()})
        return rows

    def photo_path(self, image_id: str) -> Path | None:
        """Where a held-out photo is now, if its data folder is still there."""
        root = self.data_root
        if root is None:
            return None
        for base in (root, self.path.parent / root):
            if (base / image_id).is_file():
                return base / image_id
        return None

    def predictor(self, fold: int | None = None) -> RunPredictor:
        folders = self.bundle_folders()
        if fold is not None:
            if not 0 <= fold < len(folders):
                raise SettingsError(
                    f"{self.path} has {len(folders)} fold model(s); --fold must be 0 to "
                    f"{len(folders) - 1}, not {fold}."
                )
            folders = [folders[fold]]
        return RunPredictor([load_bundle(f) for f in folders])


def _number(value: str) -> Any:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def open_run(path: str | Path) -> Run:
    """Read a run folder's settings and saved results, with a clear error if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a folder. Give the --out folder of `mangograde train`.")
    config = path / "config.yaml"
    if not config.is_file():
        raise RunError(
            f"{path} is not a mangograde run: it has no config.yaml. Give the --out folder "
            "of `mangograde train`."
        )
    try:
        settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"Cannot read {config}: {exc}") from None
    return Run(path, settings, _read_json(path / "metrics.json"), _read_json(path / "timing.json"))


class RunPredictor:
    """Grades decoded photos with one or more bundles of a run (mean of their probabilities)."""

    def __init__(self, bundles: list[Bundle]) -> None:
        self.bundles = bundles
        self.grades = bundles[0].grades
        self.geometry = geometry_from_record(bundles[0].manifest["preprocessing"]["geometry"])
        self.notices = sorted({n for b in bundles for n in b.notices})

    @property
    def models(self) -> list[Any]:
        return [b.model for b in self.bundles]

    def model_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(n_models, n_photos, n_grades)``, columns in grade order."""
        stacked = []
        for model in self.models:
            proba = np.zeros((len(images), len(self.grades)))
            proba[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(images)
            stacked.append(proba)
        return np.stack(stacked)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self.model_probabilities(images).mean(axis=0)

    def grade(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and grade codes. One model grades by its own rule, as in training
        (a blend's vote, an SVM's decision); several fold models by their mean."""
        proba = self.predict_proba(images)
        if len(self.bundles) == 1:
            return proba, np.asarray(self.models[0].predict(images), dtype=int)
        return proba, proba.argmax(axis=1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.grade(images)[1]
