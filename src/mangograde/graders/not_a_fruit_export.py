"""An export's not-a-fruit check: the general space's layers as a small ONNX graph and the
check's arrays, named in grader.json's ``not_a_fruit`` field (checksummed with the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import MangogradeError, first_line
from ..evaluation.not_a_fruit import NotAFruit, NotAFruitModel
from ..features.general import SIZE, shrunk

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
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(
            str(folder / found["graph"]), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime's own error classes
        raise NotAFruitExportError(
            f"{folder / found['graph']} cannot be loaded by ONNX Runtime ({first_line(exc)})."
        ) from None
    shape = session.get_inputs()[0].shape
    if list(shape[1:]) != [3, SIZE, SIZE] or session.get_outputs()[0].name != "features":
        raise NotAFruitExportError(
            f"{folder / found['graph']} takes {shape}, not the not-a-fruit check's photos "
            f"(3 x {SIZE} x {SIZE}): export the run again."
        )

    def embed(images: np.ndarray) -> np.ndarray:
        parts = [session.run(["features"], {"photos": shrunk(images[i : i + 256])})[0]
                 for i in range(0, len(images), 256)]  # fmt: skip
        return np.concatenate(parts).astype(np.float64)

    return NotAFruit(model, embed)
