"""The one mapping from a graded batch (:class:`~mangograde.graders.Graded`) and what came
with its photos (bytes' SHA-256 and size, the lot) to the rows the store keeps. ``serve``
and ``predict --record`` both keep their gradings through :func:`batch_of`; an answer is
then made from the ``Graded`` and the stored ids, never from the rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..graders import Graded, Grader, sha256, shares
from .store import Batch, FruitRecord, ModelIdentity, PhotoRecord, Store


@dataclass(frozen=True)
class Upload:
    """What a graded photo's record keeps of its bytes, and how long grading it took."""

    sha256: str
    size: int
    latency_ms: float | None = None

    @classmethod
    def of_bytes(cls, data: bytes, latency_ms: float | None = None) -> Upload:
        return cls(hashlib.sha256(data).hexdigest(), len(data), latency_ms)

    @classmethod
    def of_file(cls, path: Path) -> Upload:
        return cls(sha256(path), path.stat().st_size)


def identity_of(grader: Grader) -> ModelIdentity:
    """The model a grading names: the run and the checksum of what it graded with."""
    return ModelIdentity(grader.name, grader.model_sha256)


def _score(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def batch_of(lot: str, model: ModelIdentity, graded: Graded, uploads: Sequence[Upload]) -> Batch:
    """The rows of ``graded``'s photos (``uploads[i]``: photo i's bytes) and, where fruit
    ids were given, of its fruits, for lot ``lot``."""
    if len(uploads) != len(graded.image_ids):
        raise ValueError(f"{len(uploads)} uploads for {len(graded.image_ids)} graded photos")
    reasons = graded.reasons
    familiarity = graded.familiarity
    found = graded.fruits
    photos = [
        PhotoRecord(
            photo=image_id,
            sha256=upload.sha256,
            size=upload.size,
            grade=graded.grades[graded.predicted[i]],
            probabilities=shares(graded.grades, graded.proba[i]),
            check=bool(reasons[i]),
            reason=reasons[i] or None,
            familiarity=None if familiarity is None else _score(familiarity[i]),
            latency_ms=upload.latency_ms,
            fruit=None if found is None else found.names[found.of[i]],
        )  # fmt: skip
        for i, (image_id, upload) in enumerate(zip(graded.image_ids, uploads, strict=True))
    ]
    fruits = []
    if graded.fruit_grades is not None:
        grades = graded.fruit_grades
        fruits = [FruitRecord(name, graded.grades[grades.predicted[f]],
                              shares(graded.grades, grades.proba[f]), bool(grades.check[f]),
                              grades.reason(f) or None)
                  for f, name in enumerate(grades.fruits.names)]  # fmt: skip
    return Batch(lot, model, photos, fruits)


def record_graded(
    store: Store, lot: str, grader: Grader, graded: Graded, uploads: Sequence[Upload] = ()
) -> list[int]:
    """Keep every photo of ``graded`` (and its fruits) in ``lot`` in one transaction; the
    grading ids in order. Without ``uploads``, each photo's file (``graded.paths``) is read
    for its SHA-256 and size."""
    uploads = list(uploads) or [Upload.of_file(path) for path in graded.paths]
    return store.record_many([batch_of(lot, identity_of(grader), graded, uploads)])[0]
