"""The run's not-a-fruit check into an export folder: the general space's layers as an
ONNX graph and the check's arrays (read back by ``graders.not_a_fruit_export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.not_a_fruit import METHOD, NotAFruitModel, split_arrays
from ..graders.not_a_fruit_export import ARRAYS_FILE, GRAPH_FILE

FILES = (GRAPH_FILE, ARRAYS_FILE)


def write_not_a_fruit(loaded: list[Any], stage: Path) -> dict[str, Any] | None:
    """Write the check of the run's bundles (``loaded``) into ``stage``; grader.json's
    ``not_a_fruit`` field, None when the run has no check."""
    arrays = split_arrays(loaded[0].familiarity)[1]
    if arrays is None:
        return None
    from ..models.general_features import export_graph

    model = NotAFruitModel.from_arrays(arrays, "The run's familiarity.npz")
    export_graph(stage / GRAPH_FILE, model.weights_sha256)  # refuses other weights
    np.savez(stage / ARRAYS_FILE, **arrays)
    return {"graph": GRAPH_FILE, "file": ARRAYS_FILE, "method": METHOD}
