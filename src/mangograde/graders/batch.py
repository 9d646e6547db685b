"""``grade_batch``: the one way photos become grades, checks with reasons, familiarity,
drift and fruit grades. ``predict``, ``evaluate``, ``serve``, ``suggest``,
``data familiar`` and ``predict --record`` all grade through it; the service, which
runs the models in micro-batches across requests, hands the models' output to
:func:`graded_from`, the second half of the same path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..basics.progress import Bar
from ..evaluation.fruits import Fruits, fruit_grades
from .base import Grader
from .graded import Graded

BATCH = 128  # photos through the models at once


def score_photos(
    grader: Grader, images: np.ndarray, progress: bool | None = None, embed: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[np.ndarray] | None, np.ndarray | None]:
    """The models' pass: probabilities, grade codes, familiarity scores ``(n_models, n)``
    (None without familiarity), with ``embed`` each fold model's features of the photos
    (None when the grader gives none), and which photos are not a mango (None without
    the check), in batches behind a progress bar."""
    proba = np.zeros((len(images), len(grader.grades)))
    codes = np.zeros(len(images), dtype=int)
    embedder = getattr(grader, "grade_and_embed", None) if embed else None
    scores: list[Any] = []
    parts: list[Any] = []
    foreign: list[Any] = []
    with Bar(len(images), "Grading photos", progress, every=1000) as bar:
        for start in range(0, len(images), BATCH):
            chunk = slice(start, start + BATCH)
            features = None
            if embedder is not None:
                try:
                    proba[chunk], codes[chunk], features = embedder(images[chunk])
                except AttributeError:  # a family that gives no features
                    embedder = None
            if features is None:
                proba[chunk], codes[chunk], found = grader.grade_and_score(images[chunk])
            else:
                familiarity = grader.familiarity
                found = None if familiarity is None else familiarity.scores(features)
            scores.append(found)
            parts.append(features)
            foreign.append(grader.foreign(images[chunk]))
            bar.advance(len(images[chunk]))
    known = bool(scores) and all(s is not None for s in scores)
    embedded = bool(parts) and all(p is not None for p in parts)
    features = [np.concatenate(f) for f in zip(*parts, strict=True)] if embedded else None
    checked = bool(foreign) and all(f is not None for f in foreign)
    return (proba, codes, np.concatenate(scores, axis=1) if known else None, features,
            np.concatenate(foreign) if checked else None)  # fmt: skip


def graded_from(
    grader: Grader,
    image_ids: Sequence[str],
    proba: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray | None,
    fruits: Sequence[str | None] | None = None,
    abstain: float | None = None,
    not_a_fruit: np.ndarray | None = None,
) -> Graded:
    """The models' output for ``image_ids`` as a :class:`Graded`: checks with reasons,
    familiarity flags, the batch's drift and (with ``fruits``, one id per photo) the fruit
    grades, all by the grader's rule (``abstain``: the command's own threshold;
    ``not_a_fruit``: the grader's :meth:`foreign` flags of the photos)."""
    if fruits is not None and len(fruits) != len(image_ids):
        raise SettingsError(f"{len(fruits)} fruit ids for {len(image_ids)} photos: give one each.")
    rule = grader.rule if abstain is None else replace(grader.rule, abstain=abstain)
    unfamiliar = grader.unfamiliar(scores)
    fruit_ids = None if fruits is None else ["" if f is None else str(f).strip() for f in fruits]
    graded = Graded(
        list(image_ids),
        np.asarray(proba, dtype=float),
        np.asarray(predicted, dtype=int),
        tuple(grader.grades),
        rule,
        notices=list(grader.notices),
        fruit_ids=fruit_ids,
        scores=scores,
        unfamiliar=unfamiliar,
        not_a_fruit=None if not_a_fruit is None else np.asarray(not_a_fruit, dtype=bool),
        drift_p=grader.drift(scores),
    )
    if fruit_ids is not None:
        found = Fruits.from_ids(fruit_ids, graded.image_ids)
        graded.fruit_grades = fruit_grades(rule, graded.proba, found, unfamiliar,
                                           graded.not_a_fruit)  # fmt: skip
    return graded


def grade_batch(
    grader: Grader,
    images: np.ndarray,
    image_ids: Sequence[str] | None = None,
    fruits: Sequence[str | None] | None = None,
    abstain: float | None = None,
    progress: bool | None = None,
    embed: bool = False,
) -> Graded:
    """Grade decoded photos ``(n, H, W, 3)`` with ``grader``.

    Parameters
    ----------
    image_ids : each photo's name (default ``photo-1``, ``photo-2``, ...)
    fruits : which fruit each photo shows (None or "": a fruit of its own); the fruits
        are then graded from all their photos by the grader's fruit rule
    abstain : the threshold under which a photo is left to check (default: the grader's)
    embed : also keep each fold model's features of the photos (``Graded.features``)

    Examples
    --------
    >>> graded = grade_batch(grader, images, ["a.jpg", "b.jpg"], fruits=["m1", "m1"])
    >>> graded.labels, graded.fruit_grades.predicted  # doctest: +SKIP
    """
    ids = [f"photo-{i + 1}" for i in range(len(images))] if image_ids is None else image_ids
    if len(ids) != len(images):
        raise SettingsError(f"{len(ids)} photo names for {len(images)} photos: give one each.")
    proba, predicted, scores, features, foreign = score_photos(grader, images, progress, embed)
    graded = graded_from(grader, ids, proba, predicted, scores, fruits, abstain, foreign)
    graded.features = features
    return graded
