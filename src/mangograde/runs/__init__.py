"""Runs: the run folder (its files in :mod:`.folder`, staged and replaced by
:mod:`.staging`), training as flat stages
(:mod:`.train`) and grading with a run (:mod:`.predictor`)."""

from .folder import HeldOut, Run, RunError, open_run
from .predictor import RunPredictor, open_predictor
from .tracking import mirror_run, tracker_for
from .train import RunResult, fit_fold, load_for, splits_for, train_run

__all__ = [
    "HeldOut",
    "Run",
    "RunError",
    "RunPredictor",
    "RunResult",
    "fit_fold",
    "load_for",
    "mirror_run",
    "open_predictor",
    "open_run",
    "splits_for",
    "tracker_for",
    "train_run",
]
