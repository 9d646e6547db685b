"""What a CNN run adds to a run folder: checkpoints, resuming, per-epoch curves."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from .errors import SettingsError

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
# A resumed run may differ in these: the version, and where and how fast it runs.
_NOT_COMPARED = ("mangograde",)
_RUNTIME = ("device", "threads")


def check_settings(settings: dict[str, Any]) -> None:
    """Early stopping must not look at the photos the run is scored on."""
    params = settings["params"]
    if params["patience"] and not params["validation_fraction"] and settings["blend"]["folds"] < 2:
        raise SettingsError(
            "patience (early stopping) needs a validation set apart from the held-out photos: "
            "set params.validation_fraction (e.g. 0.15), or blend with --folds K, whose "
            "models each stop on their own validation fold."
        )


def check_resume(out: Path, settings: dict[str, Any]) -> None:
    """A run resumes only with the settings and data it was started with."""
    path = out / "config.yaml"
    if not path.is_file():
        raise SettingsError(f"Nothing to resume: {path} does not exist. Drop --resume.")
    before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    settings = yaml.safe_load(yaml.safe_dump(settings))  # a copy, as the file reads it back
    for record in (before, settings):
        for key in _RUNTIME:
            record.get("params", {}).pop(key, None)
    changed = [
        key
        for key in sorted(set(before) | set(settings))
        if key not in _NOT_COMPARED and before.get(key) != settings.get(key)
    ]
    if changed:
        raise SettingsError(
            f"Cannot resume the run in {out}: its settings differ in {', '.join(changed)} "
            "(see its config.yaml). Resume with the same preset and flags, or use a new --out."
        )


def configure(model: Any, checkpoints: Path, resume: bool, progress: bool | None) -> None:
    """Point a CNN, or every CNN of a blend (fitted members too), at its checkpoint folder."""
    for estimator in [model, *getattr(model, "estimators_", [])]:
        for key in estimator.get_params():
            if key.endswith("checkpoint_dir"):
                prefix = key[: -len("checkpoint_dir")]
                estimator.set_params(
                    **{key: checkpoints, f"{prefix}resume": resume, f"{prefix}progress": progress}
                )


def histories(model: Any, fold: int) -> list[dict[str, Any]]:
    """Every epoch of every CNN in ``model`` as rows of history.csv."""
    members = [("", model)] if hasattr(model, "history_") else []
    members += [(i, m) for i, m in enumerate(getattr(model, "estimators_", []))]
    return [
        {"fold": fold, "member": member, **record}
        for member, network in members
        for record in getattr(network, "history_", [])
    ]


def write_history(out: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv and curves.png."""
    from .report.figures import training_curves

    with (out / "history.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, HISTORY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    training_curves(rows, out / "curves.png")


def data_share(rows: list[dict[str, Any]]) -> float:
    """Share of training time spent augmenting and assembling batches."""
    data = sum(r["data_s"] for r in rows)
    total = data + sum(r["step_s"] for r in rows)
    return data / total if total else 0.0
