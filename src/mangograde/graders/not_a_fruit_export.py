"""An export's not-a-fruit check: the general space's layers as a small ONNX graph and the
check's arrays, named in grader.json's ``not_a_fruit`` field (checksummed with the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import MangogradeError
from ..evaluation.not_a_fruit import NotAFruit, NotAFruitModel
from ..features.general import onnx_embedder

GRAPH_FILE = "not_a_fruit.onnx"
ARRAYS_FILE = "not_a_fruit.npz"


class NotAFruitExportError(MangogradeError):
    """An export's not-a-fruit files that cannot be used."""


def read_not_a_fruit(folder: Path, manifest: dict[str, Any]) -> NotAFruit | None:
    """The export's check, None when it was exported without one."""
    found = manifest.get("not_a_fruit")
    if not found:
        return None
    try:
        with np.load(folder / found["file"], allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError) as exc:
        raise NotAFruitExportError(
            f"{folder / found['file']}: the not-a-fruit check cannot be read ({exc})."
        ) from None
    model = NotAFruitModel.from_arrays(arrays, str(folder / found["file"]))
    try:
        embed = onnx_embedder(str(folder / found["graph"]), str(folder / found["graph"]))
    except MangogradeError as exc:
        raise NotAFruitExportError(f"{exc} Export the run again.") from None
    return NotAFruit(model, embed)
