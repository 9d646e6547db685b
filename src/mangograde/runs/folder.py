"""The run folder's files: written and read here, nowhere else (staging, marking and
replacing a run is :mod:`.staging`).

A run folder holds ``config.yaml`` (the resolved settings and the folder's format
version), ``model/`` (one bundle, or ``fold-N/`` bundles), ``predictions.csv`` (every
held-out photo), ``metrics.json``, ``timing.json``, ``history.csv`` (per-epoch records,
with ``curves.png``) and, when photos were skipped, ``skipped.csv``; ``checkpoints/``
while a CNN trains. Folders written before the format version existed read as format 1.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import __version__
from ..basics.atomic import atomic_open, write_text
from ..basics.config import dump
from ..basics.errors import MangogradeError, SettingsError, first_line
from ..data import Dataset
from ..evaluation import FruitLevel
from ..images.decode import BadImage
from ..images.geometry import Geometry, geometry_record, read_geometry
from ..models.bundle import Bundle, bundle_manifest, load_bundle, save_bundle
from ..models.registry import ADDED_SETTINGS
from .staging import FORMAT_VERSION, MARKER, read_marker

CONFIG = "config.yaml"
CALIBRATION = "calibration.json"  # calibration=temperature: the fitted temperatures
FRUITS = "fruits.csv"  # with groups: every held-out fruit, graded by the run's fruit rule
HISTORY_FIELDS = (
    "fold",
    "member",
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "data_s",
    "step_s",
)
# Keys of config.yaml that record the run rather than set it (bundles do not hold them).
RECORDED = ("data", "mangograde", "format_version", "labels")  # config.yaml only
# Keys of config.yaml that a resumed run may change.
_NOT_COMPARED = ("mangograde", "format_version")


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


def _said(exc: BaseException) -> str:
    """What went wrong reading a file, in a line (a recursion error says only that)."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to be one of mangograde's files"
    if isinstance(exc, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte {exc.start})"
    return first_line(exc)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # bad JSON or UTF-8, or too deep
        raise RunError(
            f"Cannot read {path}: {_said(exc)}. Retrain the run or restore the file."
        ) from None


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []


def geometry_from_record(record: dict[str, Any]) -> Geometry:
    """The photo geometry a bundle records (sides of 8 to 4,096 pixels)."""
    geometry = read_geometry(record)
    if geometry is not None:
        return geometry
    raise RunError(
        f"Unknown photo geometry {str(record)[:80]!r} in a bundle; was it made by mangograde?"
    )


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
        """``name (preset)``, the run's title in tables; an adapted run names its parent."""
        preset = self.settings.get("preset")
        label = f"{self.name} ({preset})" if preset and preset != self.name else self.name
        members = self.member_paths
        if members:
            label += f", the mean of {' and '.join(m.name for m in members)}"
        parent = self.parent_path
        return label if parent is None else f"{label}, adapted from {parent.name}"

    @property
    def member_paths(self) -> list[Path]:
        """An ensemble's member runs (``mangograde ensemble``), where it recorded them:
        relative paths are inside the ensemble's folder; empty for any other run."""
        found = self.settings.get("ensemble")
        if not isinstance(found, list):
            return []
        paths = [
            Path(m["run"]) for m in found if isinstance(m, dict) and isinstance(m.get("run"), str)
        ]
        return [p if p.is_absolute() else self.path / p for p in paths]

    @property
    def parent_path(self) -> Path | None:
        """The run an adapted run was adapted from (``mangograde adapt``), else None."""
        adapt = self.settings.get("adapt")
        parent = adapt.get("parent") if isinstance(adapt, dict) else None
        return Path(parent) if isinstance(parent, str) and parent else None

    @property
    def ordered(self) -> bool:
        """Grades best-first (True), or classes with no order (``labels: unordered``)."""
        return self.settings.get("labels", "ordered") != "unordered"

    @property
    def headline_metrics(self) -> dict[str, Any]:
        """The held-out figures a screen shows: every number of metrics.json's top level
        and, for a run graded by fruit, ``fruit_accuracy``."""
        found = {k: v for k, v in self.metrics.items() if isinstance(v, (int, float))}
        fruit = self.metrics.get("fruit")
        accuracy = fruit.get("accuracy") if isinstance(fruit, dict) else None
        if isinstance(accuracy, dict) and isinstance(accuracy.get("value"), (int, float)):
            found["fruit_accuracy"] = accuracy["value"]
        return found

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
        if grouped == "auto":
            return f"{kind} by groups found in the photos (--groups auto: bursts, near-duplicates)"
        return f"{kind} {'by fruit' if grouped else 'by photo (no groups given)'}"

    def temperature(self, fold: int | None = None, level: str = "photo") -> float | None:
        """calibration=temperature: the temperature fit on the run's out-of-fold
        probabilities (all of them, or the one fold ``fold`` was calibrated with), of
        photos or (``level="fruit"``) of whole fruits."""
        record = _read_json(self.path / CALIBRATION)
        if level == "fruit":
            record = record.get("fruit") if isinstance(record.get("fruit"), dict) else {}
        per_fold = record.get("per_fold")
        value = (
            record.get("temperature")
            if fold is None
            else (per_fold.get(str(fold)) if isinstance(per_fold, dict) else None)
        )
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise RunError(
                f"{self.path / CALIBRATION}: temperature {value!r} is not a number above 0 "
                "(NaN included). Retrain the run, or delete the file to grade uncalibrated."
            )
        return float(value)

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
        folds = sorted(folds, key=lambda p: int(p.name.split("-")[1]))
        split = self.settings.get("split") or {}
        expected = split.get("cv")
        numbers = [p.name for p in folds]
        wanted = (
            [f"fold-{split['only_fold']}"]
            if split.get("only_fold") is not None
            else [f"fold-{i}" for i in range(int(expected or 0))]
        )
        if expected and numbers != wanted:
            raise RunError(
                f"{self.path} is inconsistent: its config.yaml says {expected} folds"
                + (
                    f" (only fold {split['only_fold']})"
                    if split.get("only_fold") is not None
                    else ""
                )
                + f" but model/ holds {', '.join(numbers)}. It was changed after training; "
                "retrain it."
            )
        return folds

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

    @cached_property
    def held_out_fruits(self) -> HeldOut | None:
        """The run's held-out fruits (fruits.csv, written when it was trained with groups):
        ``image_ids`` are the fruits, ``groups`` their photo counts."""
        rows = _read_rows(self.path / FRUITS)
        if not rows:
            return None
        code = {g: i for i, g in enumerate(self.grades)}
        try:
            return HeldOut(
                image_ids=[r["fruit"] for r in rows],
                groups=[r["photos"] for r in rows],
                folds=np.array([int(r["fold"]) for r in rows]),
                true=np.array([code[r["true"]] for r in rows]),
                predicted=np.array([code[r["predicted"]] for r in rows]),
                proba=np.array([[float(r[f"p_{g}"]) for g in self.grades] for r in rows]),
                grades=self.grades,
            )
        except (KeyError, ValueError) as exc:
            raise RunError(
                f"{self.path / FRUITS} is not a mangograde fruits file (problem with {exc}); "
                "retrain the run to rewrite it."
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

    def geometry(self) -> Geometry:
        """The photo geometry its models grade at, from a bundle's manifest (no model is
        loaded; every fold has the same)."""
        manifest = bundle_manifest(self.bundle_folders()[0])
        return geometry_from_record(manifest["preprocessing"]["geometry"])

    def bundles(self, fold: int | None = None) -> list[Bundle]:
        """Every fold's model, or only fold ``fold``'s."""
        folders = self.bundle_folders()
        if fold is not None:
            if not 0 <= fold < len(folders):
                raise SettingsError(
                    f"{self.path} has {len(folders)} fold model(s); --fold must be 0 to "
                    f"{len(folders) - 1}, not {fold}."
                )
            folders = [folders[fold]]
        bundles = [load_bundle(f) for f in folders]
        trained = {k: v for k, v in self.settings.items() if k not in RECORDED}
        for folder, bundle in zip(folders, bundles, strict=True):
            if bundle.settings != trained:
                raise RunError(
                    f"{folder} was not trained with {self.path / CONFIG}'s settings (a bundle "
                    "from another run?). Retrain the run rather than mixing its files."
                )
            _check_grades_a_photo(folder, bundle)
        return bundles


def _check_grades_a_photo(folder: Path, bundle: Bundle) -> None:
    """A loaded model must grade a plain photo of its geometry into probabilities of its
    grades: what passed the bundle's checks but does not fit together is refused here."""
    try:
        geometry = geometry_from_record(bundle.manifest["preprocessing"]["geometry"])
        photo = np.full((1, *geometry.shape), 128, dtype=np.uint8)
        proba = np.asarray(bundle.model.predict_proba(photo), dtype=np.float64)
        grades = np.asarray(bundle.model.classes_)
        fits = grades.ndim == 1 and proba.shape == (1, len(grades)) and len(grades) >= 2
        fits = fits and bool(np.all(np.isfinite(proba))) and abs(proba.sum() - 1) < 1e-3
        fits = fits and int(grades.max()) < len(bundle.grades)
    except RunError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged model raises, one message
        raise RunError(
            f"The model in {folder} cannot grade a photo ({type(exc).__name__}: "
            f"{str(exc)[:200]}): its files do not fit together. Retrain the run."
        ) from None
    if not fits:
        raise RunError(
            f"The model in {folder} does not give probabilities of its "
            f"{len(bundle.grades)} grades. Retrain the run."
        )


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
    config = path / CONFIG
    if not config.is_file():
        raise RunError(
            f"{path} is not a mangograde run: it has no config.yaml. Give the --out folder "
            "of `mangograde train`."
        )
    try:
        settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        raise RunError(f"Cannot read {config}: {_said(exc)}") from None
    if not isinstance(settings, dict):
        raise RunError(f"{config} does not hold a run's settings. Retrain the run.")
    written = settings.get("format_version", 1)
    if not isinstance(written, int) or written > FORMAT_VERSION:
        raise RunError(
            f"{path} is a run folder of format {written!r}, written by a newer mangograde; "
            f"this {__version__} reads formats 1 to {FORMAT_VERSION}. Upgrade mangograde."
        )
    if written >= 2 and read_marker(path) is None:
        raise RunError(
            f"{path} is not a finished run: it has no {MARKER}. Train it again (a killed "
            "CNN run continues with --resume)."
        )
    return Run(path, settings, _read_json(path / "metrics.json"), _read_json(path / "timing.json"))


def check_resume(
    stage: Path,
    settings: dict[str, Any],
    runtime: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """A run resumes only with the settings and data it was started with; ``runtime``
    params (where and how fast it runs) may differ. A setting the killed run's config.yaml
    lacks, at the top or inside a section, had its default then (``defaults``: the family's
    defaults; the settings added after 0.1.0 are always known)."""
    path = stage / CONFIG
    if not path.is_file():
        raise SettingsError(f"Nothing to resume: {path} does not exist. Drop --resume.")
    try:
        before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        raise SettingsError(
            f"Cannot resume from {path}: {_said(exc)}. Start again with --overwrite."
        ) from None
    if not isinstance(before, dict):
        raise SettingsError(f"Cannot resume from {path}: it holds no settings. Use --overwrite.")
    before = _with_defaults(before, {**ADDED_SETTINGS, **(defaults or {})})
    now = yaml.safe_load(yaml.safe_dump(settings))  # a copy, as the file reads it back
    for record in (before, now):
        for key in runtime:
            record.get("params", {}).pop(key, None)
    changed = [
        key
        for key in sorted(set(before) | set(now))
        if key not in _NOT_COMPARED and before.get(key) != now.get(key)
    ]
    if changed:
        raise SettingsError(
            f"Cannot resume the run in {stage}: its settings differ in {', '.join(changed)} "
            f"(see its {CONFIG}). Resume with the same preset and flags, or use a new --out."
        )


def _with_defaults(written: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``written`` with every key it lacks taken from ``defaults``, section by section."""
    merged = dict(written)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], value)
    return merged


def run_config(
    settings: dict[str, Any], data_record: dict[str, Any], ordered: bool = True
) -> dict[str, Any]:
    """What config.yaml records: the settings, the data (grades or unordered classes), the
    versions."""
    return {
        **settings,
        "labels": "ordered" if ordered else "unordered",
        "data": data_record,
        "mangograde": __version__,
        "format_version": FORMAT_VERSION,
    }


def write_config(out: Path, resolved: dict[str, Any]) -> None:
    write_text(out / CONFIG, dump(resolved))


def fold_name(number: int, settings: dict[str, Any]) -> str:
    """``fold-N`` of a k-fold run (also when it trains only fold N); empty for a hold-out."""
    return "" if settings["split"].get("val_fraction") else f"fold-{number}"


def checkpoint_folder(out: Path, name: str) -> Path:
    return out / "checkpoints" / name


def save_fold_model(
    out: Path,
    name: str,
    model: Any,
    settings: dict[str, Any],
    grades: tuple[str, ...],
    geometry: Geometry,
    record: dict[str, Any],
    familiarity: dict[str, np.ndarray] | None = None,
) -> Path:
    preprocessing = {"geometry": geometry_record(geometry), "features": settings["features"]}
    folder = out / "model" / name
    return save_bundle(model, folder, settings, grades, preprocessing, record, familiarity)


def write_predictions(
    out: Path, dataset: Dataset, folds: np.ndarray, proba: np.ndarray, predicted: np.ndarray
) -> None:
    held = np.flatnonzero(folds >= 0)
    with atomic_open(out / "predictions.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["image", "group", "fold", "true", "predicted", *(f"p_{g}" for g in dataset.grades)]
        )
        for i in held:
            group = dataset.groups[i] if dataset.groups is not None else ""
            writer.writerow(
                [
                    dataset.image_ids[i],
                    group,
                    int(folds[i]),
                    dataset.grades[dataset.labels[i]],
                    dataset.grades[predicted[i]],
                    *(f"{p:.6f}" for p in proba[i]),
                ]
            )


def write_fruit_predictions(out: Path, level: FruitLevel, grades: Sequence[str]) -> None:
    """fruits.csv: every held-out fruit as the run's fruit rule graded it."""
    with atomic_open(out / FRUITS, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["fruit", "fold", "photos", "true", "predicted", *(f"p_{g}" for g in grades)]
        )
        counts = level.fruits.counts
        for i, name in enumerate(level.fruits.names):
            writer.writerow(
                [name, int(level.folds[i]), int(counts[i]), grades[level.true[i]],
                 grades[level.predicted[i]], *(f"{p:.6f}" for p in level.proba[i])]
            )  # fmt: skip


def write_json(out: Path, name: str, record: dict[str, Any]) -> None:
    write_text(out / name, json.dumps(record, indent=2))


def write_skipped(out: Path, bad: Sequence[BadImage]) -> None:
    with atomic_open(out / "skipped.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        for image in bad:
            writer.writerow([str(image.path), image.reason])


def write_history(out: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv, and its curves drawn by the report (curves.png)."""
    from ..report.figures import training_curves

    with atomic_open(out / "history.csv", newline="") as handle:
        writer = csv.DictWriter(handle, HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    training_curves(rows, out / "curves.png")


def clear_checkpoints(out: Path) -> None:
    """The bundles hold the final weights; checkpoints only serve a run that is killed."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
