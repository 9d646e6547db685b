"""Staging, marking and replacing a run folder.

A run is written into ``.NAME.partial/`` beside its folder, carries the marker
``.mangograde-run`` (format version, run id, every file it wrote) and is renamed into place
once complete. A run it replaces loses only the files its own marker lists; a killed run's
stage waits for ``--resume``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .. import __version__
from ..basics.atomic import write_text
from ..basics.errors import OutputError, SettingsError

FORMAT_VERSION = 2  # 1: mangograde 0.1.0, before config.yaml recorded it
MARKER = ".mangograde-run"  # JSON: format, version, run id and what the run wrote
CHECKPOINT_FILE = "checkpoint.pt"


def staging_folder(out: Path) -> Path:
    """Where a run is written until it is complete (and where a killed run waits)."""
    return out.parent / f".{out.name}.partial"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a run folder that mangograde wrote, or None."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == "mangograde-run" else None


def write_marker(folder: Path, run_id: str) -> None:
    """Mark ``folder`` as a run and list what it holds (all that a later --overwrite clears)."""
    entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    files = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.name != MARKER and not p.is_dir()
    )
    record = {
        "format": "mangograde-run",
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "mangograde": __version__,
        "entries": entries,
        "files": files,  # what a later --overwrite replaces, file by file
    }
    write_text(folder / MARKER, json.dumps(record, indent=2))


def prepare_stage(out: Path, overwrite: bool, resume: bool) -> Path:
    """The staging folder to train into, after checking what ``out`` and a killed run's
    staging folder hold. Nothing is deleted here except a killed run's stage on
    ``overwrite``; ``out`` itself is replaced only when the new run is complete."""
    stage = staging_folder(out)
    if resume:
        if stage.is_dir():
            return stage
        if read_marker(out) is not None:
            raise SettingsError(f"The run in {out} is finished: there is nothing to resume.")
        raise SettingsError(f"Nothing to resume in {out}: no killed run was found. Drop --resume.")
    if stage.exists():
        if not overwrite:
            raise SettingsError(
                f"A killed run of {out} left its work in {stage}. Pass --resume to continue "
                "it, or --overwrite to start again."
            )
        if read_marker(stage) is None:
            raise OutputError(f"{stage} is not a mangograde run's stage; remove it yourself.")
        shutil.rmtree(stage)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SettingsError(
                f"{out} already exists and is not empty. Choose another --out, or pass "
                "--overwrite to replace the run in it."
            )
        if read_marker(out) is None:
            raise OutputError(
                f"{out} holds no run marked by mangograde ({MARKER}): refusing to replace "
                "what is in it. Choose another --out (runs written before 0.2 carry no "
                "marker: delete such a run yourself to train into its folder again)."
            )
    stage.mkdir(parents=True)
    write_marker(stage, "")
    return stage


def discard_stage(stage: Path, keep_checkpoints: bool) -> None:
    """After a failure: remove the stage, unless it holds checkpoints worth resuming."""
    if keep_checkpoints and any((stage / "checkpoints").rglob(CHECKPOINT_FILE)):
        return
    shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path, run_id: str) -> None:
    """Move the complete run into ``out`` in one rename. A run it replaces loses what that
    run wrote (its marker's list); anything else in the folder moves to the new run."""
    write_marker(stage, run_id)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        stage.rename(out)
        return
    old = read_marker(out) or {"entries": []}
    retired = out.parent / f".{out.name}.replaced"
    shutil.rmtree(retired, ignore_errors=True)
    out.rename(retired)
    stage.rename(out)
    for kept in _not_written_by(retired, old):
        target = out / kept.relative_to(retired)
        if target.exists():  # the new run wrote a file of that name: keep both
            target = target.with_name(f"{target.name}.kept")
        target.parent.mkdir(parents=True, exist_ok=True)
        kept.rename(target)
    shutil.rmtree(retired)


def _not_written_by(folder: Path, marker: dict[str, Any]) -> list[Path]:
    """The files (or, for a marker before 0.2.1, the top-level entries) in ``folder`` that
    the run ``marker`` describes did not write."""
    if isinstance(marker.get("files"), list):
        listed = set(marker["files"]) | {MARKER}
        return [
            p
            for p in sorted(folder.rglob("*"))
            if not p.is_dir() and p.relative_to(folder).as_posix() not in listed
        ]
    listed = set(marker.get("entries") or []) | {MARKER}
    return [p for p in sorted(folder.iterdir()) if p.name not in listed]
