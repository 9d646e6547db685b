"""``predict --record``: the graded photos (and their fruits) kept in a lot of the records
database, in one transaction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.fruits import FruitGrades
from ..graders import sha256
from ..records import FruitRecord, ModelIdentity, PhotoRecord, Store
from .predict import Graded


def shares(grades: tuple[str, ...], proba: np.ndarray) -> dict[str, float]:
    """One photo's (or fruit's) probabilities by grade, as answered and recorded."""
    return {g: round(float(p), 6) for g, p in zip(grades, proba, strict=True)}


def record_graded(
    store: Store,
    lot: str,
    grader: Any,
    graded: Graded,
    abstain: float | None,
    fruits: FruitGrades | None = None,
) -> list[int]:
    """Keep every graded photo of ``graded`` (and each fruit of ``fruits``) in ``lot``."""
    reasons = graded.reasons(abstain)
    familiarity = graded.familiarity
    names = graded.fruits.names if graded.fruits is not None else ()
    of = graded.fruits.of if graded.fruits is not None else ()
    photos = []
    for i, path in enumerate(graded.paths):
        sha, size = sha256(path), path.stat().st_size
        score = None if familiarity is None else float(familiarity[i])
        photos.append(PhotoRecord(
            photo=graded.image_ids[i], sha256=sha, size=size,
            grade=graded.grades[graded.predicted[i]],
            probabilities=shares(graded.grades, graded.proba[i]), check=bool(reasons[i]),
            reason=reasons[i] or None,
            familiarity=score if score is None or np.isfinite(score) else None,
            fruit=names[of[i]] if len(names) else None,
        ))  # fmt: skip
    kept = []
    if fruits is not None and graded.fruits is not None:
        kept = [FruitRecord(name, graded.grades[fruits.predicted[f]],
                            shares(graded.grades, fruits.proba[f]), bool(fruits.check[f]),
                            fruits.reason(f) or None)
                for f, name in enumerate(fruits.fruits.names)]  # fmt: skip
    identity = ModelIdentity(grader.name, grader.model_sha256)
    return store.record(lot, identity, photos, kept)
