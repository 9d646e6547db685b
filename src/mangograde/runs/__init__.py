"""Runs: the run folder (its files in :mod:`.folder`, staged and replaced by
:mod:`.staging`), the fold-fitting stages the training workflows share (:mod:`.fitting`)
and grading with a run (:mod:`.predictor`). Training a run is
:mod:`mangograde.workflows.train`'s, adapting one :mod:`mangograde.workflows.adapt`'s."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from .fitting import fit_fold, load_for, splits_for
from .folder import HeldOut, Run, RunError, open_run
from .predictor import RunPredictor, open_predictor
from .tracking import mirror_run, tracker_for

# Names that moved up to the workflows layer: forwarded on first use, with a warning (a
# static import would have this layer import the one above it).
_MOVED_UP = {"RunResult": "mangograde.workflows.train", "train_run": "mangograde.workflows.train"}


def __getattr__(name: str) -> Any:
    home = _MOVED_UP.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} has moved: import it from {home}.", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(home), name)


__all__ = [
    "HeldOut",
    "Run",
    "RunError",
    "RunPredictor",
    "fit_fold",
    "load_for",
    "mirror_run",
    "open_predictor",
    "open_run",
    "splits_for",
    "tracker_for",
]
