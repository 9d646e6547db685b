"""Saving and loading a trained model as a bundle that cannot run code from the file.

A bundle is a folder: ``bundle.json`` (settings, grade order, preprocessing, library
versions, and the SHA-256 of each stored file), ``model.json`` and ``arrays.npz`` (see
:mod:`mangograde.models.state`: only allowed classes are rebuilt, no pickle). A file
whose checksum does not match, or that names any other type, is refused before anything
in it is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.atomic import write_bytes
from ..basics.errors import MangogradeError
from ..data.dataset import grade_names_problem
from . import state

FORMAT = "mangograde-bundle"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
MANIFEST = "bundle.json"
FAMILIARITY_FILE = "familiarity.npz"  # plain arrays of the fold's familiarity model


class BundleError(MangogradeError):
    """A bundle is missing, damaged, changed or holds something not trusted."""


@dataclass
class Bundle:
    model: Any
    manifest: dict[str, Any]
    notices: list[str] = field(default_factory=list)
    familiarity: dict[str, np.ndarray] | None = None  # arrays, when the run stored them

    @property
    def grades(self) -> tuple[str, ...]:
        return tuple(self.manifest["grades"])

    @property
    def settings(self) -> dict[str, Any]:
        return self.manifest["settings"]


def library_versions() -> dict[str, str]:
    names = ("numpy", "scikit-learn", "scipy", "numba", "pillow", "mangograde")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing distribution is just not recorded
            continue
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_bundle(
    model: Any,
    folder: str | Path,
    settings: dict[str, Any],
    grades: tuple[str, ...],
    preprocessing: dict[str, Any],
    extra: dict[str, Any] | None = None,
    familiarity: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model`` and what is needed to use it into ``folder``; returns the folder.
    ``familiarity``: plain arrays of the fold's familiarity model (``familiarity.npz``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        tree, arrays = state.dumps(model)
    except state.StateError as exc:
        raise BundleError(str(exc)) from None
    write_bytes(folder / ARRAYS_FILE, arrays)
    write_bytes(folder / MODEL_FILE, tree)
    files = {MODEL_FILE: _sha256(tree), ARRAYS_FILE: _sha256(arrays)}
    if familiarity is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **familiarity)
        write_bytes(folder / FAMILIARITY_FILE, buffer.getvalue())
        files[FAMILIARITY_FILE] = _sha256(buffer.getvalue())
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "grades": list(grades),
        "settings": settings,
        "preprocessing": preprocessing,
        "versions": library_versions(),
        "files": files,
        **(extra or {}),
    }
    write_bytes(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    return folder


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(
            f"{folder} is not a mangograde model bundle: {MANIFEST} is missing. "
            "Pass a run folder's model/ (or fold-N/) folder written by `mangograde train`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is damaged (not valid JSON: {exc}); retrain.") from None
    except RecursionError:
        raise BundleError(f"{path} is nested too deeply to be a bundle manifest.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not a mangograde bundle manifest.")
    problem = grade_names_problem(manifest.get("grades"))
    if problem is not None:
        raise BundleError(f"{path}: field 'grades' is {manifest.get('grades')!r}: {problem}.")
    for field_name in ("settings", "preprocessing", "files"):
        if not isinstance(manifest.get(field_name), dict):
            raise BundleError(f"{path}: field {field_name!r} is missing or not a mapping.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format {manifest.get('format_version')!r}; this mangograde "
            f"reads format {FORMAT_VERSION}. Use the mangograde version that wrote it."
        )
    return manifest


def bundle_manifest(folder: str | Path) -> dict[str, Any]:
    """A bundle's ``bundle.json``, checked, without loading its model."""
    return _read_manifest(Path(folder))


def load_bundle(folder: str | Path) -> Bundle:
    """Load a bundle, refusing a changed file or any type that is not allowed."""
    from .registry import load_families

    folder = Path(folder)
    manifest = _read_manifest(folder)
    load_families()  # a plugin family's own classes become trusted
    data = {}
    stored = (MODEL_FILE, ARRAYS_FILE, FAMILIARITY_FILE)
    for name in [n for n in stored if n != FAMILIARITY_FILE or n in manifest.get("files", {})]:
        path = folder / name
        try:
            data[name] = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"Cannot read {path}: {exc.strerror}.") from None
        if _sha256(data[name]) != manifest.get("files", {}).get(name):
            raise BundleError(
                f"{path} does not match the checksum in {MANIFEST}: it was changed or damaged "
                "after it was saved. Refusing to load it; retrain or get the bundle again."
            )
    try:
        model = state.loads(data[MODEL_FILE], data[ARRAYS_FILE])
    except state.StateError as exc:
        raise BundleError(
            f"Refusing to load {folder / MODEL_FILE}: {exc}. The bundle is not as mangograde "
            "saves it (foreign, damaged or tampered with); retrain, or get it again."
        ) from None
    familiarity = None
    if FAMILIARITY_FILE in data:
        try:
            with np.load(io.BytesIO(data[FAMILIARITY_FILE]), allow_pickle=False) as arrays:
                familiarity = {k: arrays[k] for k in arrays.files}
        except (ValueError, OSError) as exc:
            raise BundleError(f"{folder / FAMILIARITY_FILE} cannot be read ({exc}).") from None
    return Bundle(model, manifest, _version_notices(manifest), familiarity)


def _version_notices(manifest: dict[str, Any]) -> list[str]:
    """Libraries whose version differs from the one that saved the bundle."""
    saved, now = manifest.get("versions", {}), library_versions()
    return [
        f"The bundle was saved with {name} {saved[name]}; this is {now[name]}. Its "
        "predictions should match, but check them on a few known photos."
        for name in ("scikit-learn", "numpy")
        if name in saved and name in now and saved[name] != now[name]
    ]
