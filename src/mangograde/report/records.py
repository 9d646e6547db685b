"""What the report renders: plain records that `comparison` fills from run folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Mistake:
    image_id: str
    true: str
    predicted: str
    confidence: float
    fold: int
    figure: bytes | None = None
    note: str = ""


@dataclass
class RunSummary:
    """One row of the report: a run's held-out photos, or an evaluation it saved."""

    label: str
    kind: str  # the model family
    ordered: bool  # grades best-first, or classes with no order
    how: str  # how the photos were held out, or that `evaluate` scored them
    resumed: bool
    evaluation: dict[str, Any]
    train_s: float | None  # features + fitting, all folds, decoding excluded
    per_photo_ms: float | None  # one fold model
    n_models: int
    model_bytes: int
    history: list[dict[str, Any]]
    curves: bytes | None
    plots: list[tuple[str, bytes]]
    mistakes: list[Mistake] = field(default_factory=list)
    scored_on: str = ""  # which photos the row was scored on: rows differ, scores do too
    fruit: dict[str, Any] | None = None  # the same scores of whole fruits, where groups said


@dataclass
class Comparison:
    runs: list[RunSummary]
    grades: tuple[str, ...]
    study: dict[str, list[tuple[str, str, float]]] | None  # shown beside competition data
    created: str
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
