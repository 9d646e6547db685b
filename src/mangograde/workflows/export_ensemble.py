"""``mangograde export`` of an ensemble run: one folder holding each member's export (its
run exported as any run is: an ONNX graph of networks, or a classical run's arrays) and
the mean (see :mod:`mangograde.graders.ensemble_export`), checked against the run on the
same photos before it is moved into place."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..basics.errors import SettingsError
from ..basics.progress import Bar
from ..evaluation.familiarity import Familiarity, familiarity_from_arrays
from ..evaluation.fruits import fruit_rule
from ..graders import GRADER_FILE, ExportError, sha256
from ..graders.ensemble_export import (
    ENGINE,
    FAMILIARITY,
    FORMAT_VERSION,
    EnsembleExportGrader,
)
from ..graders.exported import FORMAT
from ..images.geometry import geometry_record
from ..runs import open_predictor
from ..runs.folder import Run

PARITY_PHOTOS = 16
PARITY_TOLERANCE = 1e-4  # its members may be networks


def _member_folder(number: int, label: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:40]
    return f"member-{number}-{safe}"


def export_ensemble(
    run: Run,
    out: Path,
    export_member: Callable[..., Any],
    fold: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Export the ensemble ``run`` (every fold, or fold ``fold`` alone: one lane, faster)
    into ``out`` (claimed by the caller); each member with ``export_member(member_run_path,
    folder, fold=fold, progress=False)``. The manifest."""
    members = run.member_paths
    missing = [p for p in members if not (p / "config.yaml").is_file()]
    if missing:
        raise ExportError(
            f"{run.path}'s member {missing[0]} is not there any more: exporting an ensemble "
            "exports its member runs. Put the member run back where the ensemble recorded it "
            "(config.yaml, ensemble:), or make the ensemble again from where the runs are."
        )
    bundles = run.bundles(fold)
    models = [b.model for b in bundles]
    labels = [str(x) for x in models[0].labels]
    with Bar(len(members) + 2, "Exporting the ensemble", progress) as bar:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
            stage = Path(work) / "export"
            stage.mkdir()
            entries = []
            for j, (path, label) in enumerate(zip(members, labels, strict=True)):
                bar.advance(0, f"exporting member {label}")
                folder = _member_folder(j, label)
                export_member(path, stage / folder, fold=fold, progress=False)
                entries.append({
                    "folder": folder, "label": label, "size": int(models[0].sizes[j]),
                    "weights": [float(m.weights[j]) for m in models],
                    "temperatures": [None if m.temperatures[j] is None else float(m.temperatures[j])
                                     for m in models],
                })  # fmt: skip
                bar.advance(1, f"member {label} exported")
            manifest = _manifest(run, entries, len(bundles), fold)
            stored = [b.familiarity for b in bundles]
            if all(a is not None for a in stored):
                familiarity = Familiarity(tuple(familiarity_from_arrays(a) for a in stored))  # type: ignore[arg-type]
                np.savez(stage / FAMILIARITY, **familiarity.arrays())
                manifest["familiarity"] = {"file": FAMILIARITY, "method": "either",
                                           "threshold": 1.0}  # fmt: skip
            names = [f"{e['folder']}/{GRADER_FILE}" for e in entries]
            names += [FAMILIARITY] if "familiarity" in manifest else []
            manifest["files"] = {name: sha256(stage / name) for name in names}
            (stage / GRADER_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            bar.advance(1, "checking the export against the run")
            manifest["parity_max_abs_diff"] = _parity(run, stage, fold)
            (stage / GRADER_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            if out.exists():
                shutil.rmtree(out)
            stage.rename(out)
    return manifest


def _manifest(run: Run, members: list[dict[str, Any]], folds: int, fold: int | None
              ) -> dict[str, Any]:  # fmt: skip
    settings = run.settings
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine": ENGINE,
        "folds": folds,
        "grades": list(run.grades),
        "labels": "ordered" if run.ordered else "unordered",
        "geometry": geometry_record(run.geometry()),
        "members": members,
        "fold_rule": (f"fold {fold} alone: " if fold is not None else "")
        + "each fold the weighted mean of its members, then the mean of the folds",
        "decision": settings.get("decision", "argmax"),
        "temperature": run.temperature(fold),
        "abstain": settings.get("abstain"),
        "fruit_rule": fruit_rule(settings),
        "fruit_temperature": run.temperature(fold, "fruit"),
        "source_run": run.name,
        "source": {
            "family": run.model_kind,
            "preset": settings.get("preset"),
            "metrics": run.headline_metrics,
        },  # fmt: skip
        "versions": {"mangograde": __version__},
    }


def _parity(run: Run, stage: Path, fold: int | None) -> float:
    """Largest probability difference between the run and its export on fixed photos."""
    predictor = open_predictor(run, fold)
    photos = np.random.default_rng(0).integers(
        0, 256, (PARITY_PHOTOS, *predictor.geometry.shape), np.uint8
    )
    drift = float(np.abs(EnsembleExportGrader(stage).predict_proba(photos)
                         - predictor.predict_proba(photos)).max())  # fmt: skip
    if drift > PARITY_TOLERANCE:
        raise SettingsError(
            f"The ensemble's export and its run disagree by {drift:.2e} on the same photos "
            f"(over {PARITY_TOLERANCE}): the export is not trustworthy; please report it."
        )
    return drift
