"""What a ``grader.json`` may hold: every field checked on load, each refusal naming it.

An export is a folder a user copies between machines; its ``grader.json`` must not be able
to point the grader at another file, switch its checksums off or make it grade with values
no export writes (a NaN temperature, repeated grades, a probability threshold of 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..basics.errors import MangogradeError
from ..data.dataset import grade_names_problem
from ..evaluation.decisions import DECISIONS
from ..evaluation.fruits import FRUIT_RULES
from ..evaluation.not_a_fruit import METHOD
from ..images.geometry import read_geometry

MODEL_FILE = "model.onnx"
NUMPY_FILE = "model.npz"
PRECISIONS = ("fp32", "int8")
VOTING = ("mean", "vote")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(MangogradeError):
    """A grader.json field that no export writes."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_or_none(value: Any) -> bool:
    return value is None or (_is_number(value) and value > 0)


def _own_file(name: Any) -> bool:
    """A file name in the export's own folder (no path)."""
    return isinstance(name, str) and Path(name).name == name and name not in ("", ".", "..")


def _files(model: str) -> Callable[[Any], bool]:
    def valid(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and model in value
            and all(
                _own_file(name) and isinstance(digest, str) and _SHA256.fullmatch(digest)
                for name, digest in value.items()
            )
        )

    return valid


def _members(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


# What every export's grader.json holds, whatever grades it.
COMMON: dict[str, tuple[Callable[[Any], bool], str]] = {
    "grades": (
        lambda v: grade_names_problem(v) is None,
        "two or more distinct names, without < > or control characters",
    ),  # fmt: skip
    "labels": (lambda v: v in ("ordered", "unordered"), "ordered or unordered"),
    "geometry": (lambda v: isinstance(v, dict) and read_geometry(v) is not None, "a geometry"),
    "bundles": (
        lambda v: isinstance(v, list) and v and all(isinstance(b, dict) for b in v),
        "a list of fold models",
    ),  # fmt: skip
    "fold_rule": (lambda v: isinstance(v, str) and v, "a description of how folds combine"),
    "decision": (lambda v: v in DECISIONS, " or ".join(DECISIONS)),
    "temperature": (_positive_or_none, "null or a number above 0"),
    "abstain": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "null or 0 to 1"),
    "fruit_rule": (lambda v: v in FRUIT_RULES, " or ".join(FRUIT_RULES)),
    "fruit_temperature": (_positive_or_none, "null or a number above 0"),
    "source_run": (lambda v: isinstance(v, str), "the run's name"),
    "source": (lambda v: isinstance(v, dict), "a record of the run"),
}
# An ONNX graph of networks (CNN runs; format 1, no "engine" field).
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: v == MODEL_FILE, f"{MODEL_FILE!r}, the graph in the export's own folder"),
    **COMMON,
    "members": (_members, "a list of the graph's networks"),
    "precision": (lambda v: v in PRECISIONS, " or ".join(PRECISIONS)),
    "opset": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 17, "17 or newer"),
    "files": (_files(MODEL_FILE),
              f"file names in the folder with their SHA-256, {MODEL_FILE} among them"),
}  # fmt: skip
# A classical run's fold models as plain arrays, graded with numpy (format 2).
NUMPY_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "engine": (lambda v: v == "numpy", "numpy"),
    "model": (lambda v: v == NUMPY_FILE, f"{NUMPY_FILE!r}, the arrays in the export's own folder"),
    **COMMON,
    "members": (_members, "a description of each fold model"),
    "precision": (lambda v: v == "run", "run (each part in the dtype the run computed it in)"),
    "files": (_files(NUMPY_FILE),
              f"file names in the folder with their SHA-256, {NUMPY_FILE} among them"),
}  # fmt: skip
ENGINES = {"onnx": FIELDS, "numpy": NUMPY_FIELDS}
OPTIONAL = {"labels", "decision", "temperature", "abstain", "fruit_rule", "fruit_temperature"}


def engine_of(manifest: dict[str, Any]) -> str:
    """Which engine grades an export: ``onnx`` (format 1 says none) or ``numpy``."""
    return str(manifest.get("engine", "onnx"))


def check_manifest(manifest: dict[str, Any], where: Path) -> None:
    """Refuse, naming the field, anything in ``manifest`` an export does not write."""
    engine = manifest.get("engine", "onnx")
    if engine not in ENGINES:
        raise ManifestError(
            f"{where}: field 'engine' is {_shown(engine)}; expected {' or '.join(ENGINES)}. "
            "Export the run again, or upgrade mangograde if a newer one made it."
        )
    for name, (valid, expected) in ENGINES[engine].items():
        if name not in manifest:
            if name in OPTIONAL:
                continue
            raise ManifestError(f"{where}: field {name!r} is missing (expected {expected}).")
        if not valid(manifest[name]):
            raise ManifestError(
                f"{where}: field {name!r} is {_shown(manifest[name])}; expected {expected}. "
                "Export the run again."
            )
    members = len(manifest["members"])
    for number, bundle in enumerate(manifest["bundles"]):
        used = bundle.get("members")
        if bundle.get("voting") not in VOTING or not (
            isinstance(used, list) and used
            and all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < members
                    for m in used)
        ):  # fmt: skip
            raise ManifestError(
                f"{where}: field 'bundles' [{number}] must name its voting ({' or '.join(VOTING)}) "
                f"and members (numbers 0 to {members - 1}). Export the run again."
            )
    familiarity = manifest.get("familiarity")
    if familiarity is not None and not (
        isinstance(familiarity, dict)
        and familiarity.get("file") in manifest["files"]
        and isinstance(familiarity.get("member_features"), list)
        and all(isinstance(w, int) and w > 0 for w in familiarity["member_features"])
    ):
        raise ManifestError(
            f"{where}: field 'familiarity' must name a file the export lists and each "
            "network's feature width. Export the run again."
        )
    check_not_a_fruit(manifest, where)


def check_not_a_fruit(manifest: dict[str, Any], where: Path) -> None:
    """The optional ``not_a_fruit`` field: its graph and arrays, files the export lists."""
    check = manifest.get("not_a_fruit")
    listed = manifest.get("files") or {}
    if check is not None and not (
        isinstance(check, dict)
        and set(check) == {"graph", "file", "method"}
        and check["graph"] in listed
        and check["file"] in listed
        and check["method"] == METHOD
    ):
        raise ManifestError(
            f"{where}: field 'not_a_fruit' is {_shown(check)}; expected its graph and arrays, "
            f"files the export lists, made as {METHOD!r}. Export the run again."
        )


def check_graph(session: Any, manifest: dict[str, Any], where: Path) -> None:
    """The graph takes the geometry's photos and gives (photos, networks, grades)."""
    geometry = read_geometry(manifest["geometry"])
    assert geometry is not None  # checked with the manifest
    inputs, outputs = session.get_inputs(), session.get_outputs()
    side = list(geometry.shape)
    photos_ok = (
        len(inputs) == 1
        and inputs[0].name == "photos"
        and inputs[0].type == "tensor(uint8)"
        and list(inputs[0].shape[1:]) == side
    )
    expected = [len(manifest["members"]), len(manifest["grades"])]
    probabilities_ok = (
        bool(outputs)
        and outputs[0].name == "probabilities"
        and list(outputs[0].shape[1:]) == expected
    )
    if not (photos_ok and probabilities_ok):
        found = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
        gives = ", ".join(f"{o.name} {o.shape}" for o in outputs)
        raise ManifestError(
            f"{where}: its graph takes {found} and gives {gives}; grader.json describes photos "
            f"of {side[0]} x {side[1]} and {expected[0]} network(s) grading "
            f"{len(manifest['grades'])} grades. This is not the graph that was exported with it."
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
