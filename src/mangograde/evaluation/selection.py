"""Which photos (or fruits) to label next: the ones the run is least sure of, spread over
what it has seen, never two near-duplicates.

Among the ``candidates x n`` least sure items, the next pick is the one farthest (cosine
distance in the run's features, each dimension standardised over the photos given) from
every item already labelled or picked (k-center, farthest first). An item closer than
``duplicate x`` the pool's median nearest-neighbour distance to a labelled or picked one
is a near-duplicate: skipped, and said so. Numpy only; the features of several fold
models count together (the mean of their cosine similarities), and no ``n x n`` matrix
is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..basics.errors import SettingsError

MEASURES = ("margin", "entropy")
_SAMPLE = 400  # items whose nearest neighbour sets the near-duplicate scale


def uncertainty(proba: np.ndarray, by: str = "margin") -> np.ndarray:
    """How unsure the run is of each row of calibrated probabilities, 0 (sure) to 1:
    ``margin``: 1 minus the gap between the two most likely grades; ``entropy``: the
    entropy over that of a uniform guess."""
    proba = np.asarray(proba, dtype=np.float64)
    if by == "margin":
        top = np.sort(proba, axis=1)
        return 1.0 - (top[:, -1] - top[:, -2])
    if by == "entropy":
        p = np.clip(proba, 1e-12, 1.0)
        return -(p * np.log(p)).sum(axis=1) / np.log(proba.shape[1])
    raise SettingsError(f"--by must be one of {', '.join(MEASURES)}, not {by!r}.")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def standardised(features: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each model's features with every dimension at mean 0 and variance 1 over the photos
    given: a colour share and a texture count weigh alike in the distance."""
    found = []
    for f in features:
        f = np.nan_to_num(np.asarray(f, dtype=np.float64))
        found.append((f - f.mean(axis=0)) / np.maximum(f.std(axis=0), 1e-9))
    return found


def pooled(features: Sequence[np.ndarray], members: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each item's features as the mean of its members' unit features (a fruit from its
    photos): ``members[j]``, the rows of item j."""
    return [_unit(np.stack([_unit(f[rows]).mean(axis=0) for rows in members])) for f in features]


class _Space:
    """Cosine distances in several models' features at once."""

    def __init__(self, features: Sequence[np.ndarray]) -> None:
        self.units = [_unit(f) for f in features]

    def to(self, i: int) -> np.ndarray:
        """Every item's distance to item ``i``."""
        return 1.0 - np.mean([u @ u[i] for u in self.units], axis=0)

    def nearest(self, others: Sequence[np.ndarray]) -> np.ndarray:
        """Every item's distance to the nearest row of ``others`` (one array a model)."""
        found = np.full(len(self.units[0]), np.inf)
        if len(others[0]) == 0:
            return found
        for start in range(0, len(others[0]), 512):
            part = [_unit(o[start : start + 512]) for o in others]
            similar = np.mean([u @ o.T for u, o in zip(self.units, part, strict=True)], axis=0)
            found = np.minimum(found, 1.0 - similar.max(axis=1))
        return found

    def typical_gap(self, rng: np.random.Generator) -> float:
        """The median distance from an item to its nearest other item (on a sample)."""
        n = len(self.units[0])
        rows = rng.choice(n, size=min(n, _SAMPLE), replace=False)
        gaps = []
        for i in rows:
            distance = self.to(int(i))
            distance[i] = np.inf
            gaps.append(distance.min())
        return float(np.median(gaps)) if gaps else 0.0


@dataclass
class Picked:
    order: list[int]  # the items to label, first first
    distance: list[float]  # each pick's distance to the nearest labelled or earlier pick
    duplicates: dict[int, int] = field(default_factory=dict)  # skipped item -> its twin's
    threshold: float = 0.0  # distance below which two items are near-duplicates


def pick(
    unsure: np.ndarray,
    features: Sequence[np.ndarray],
    n: int,
    labelled: Sequence[np.ndarray] | None = None,
    duplicate: float = 0.25,
    candidates: float = 2.0,
    seed: int = 0,
) -> Picked:
    """Choose ``n`` items (see the module's docstring). ``unsure``: each item's
    :func:`uncertainty`; ``features``: one ``(n_items, d)`` array a fold model;
    ``labelled``: the features of items already labelled, likewise (never picked, and
    nothing near them is)."""
    unsure = np.asarray(unsure, dtype=np.float64)
    total = len(unsure)
    if n < 1:
        raise SettingsError(f"--n must be at least 1, got {n}.")
    if candidates < 1:
        raise SettingsError(f"suggest.candidates must be at least 1, got {candidates}.")
    space = _Space(features)
    threshold = duplicate * space.typical_gap(np.random.default_rng(seed)) if total > 1 else 0.0
    nearest_of = np.full(total, -1)
    gap = np.full(total, np.inf)
    if labelled is not None and len(labelled[0]):
        gap = space.nearest(labelled)
    order, distance, twins = [], [], {}
    ranked = np.argsort(-unsure, kind="stable")
    open_ = np.zeros(total, dtype=bool)
    open_[ranked[: max(n, int(np.ceil(candidates * n)))]] = True
    taken = np.zeros(total, dtype=bool)
    while len(order) < n:
        left = open_ & ~taken
        if not left.any():
            more = ranked[~open_[ranked] & ~taken[ranked]]
            if len(more) == 0:
                break
            open_[more[: max(1, n - len(order))]] = True  # widen past the least sure
            continue
        scores = np.where(left, np.minimum(gap, 2.0) + 1e-9 * unsure, -np.inf)
        i = int(np.argmax(scores))
        taken[i] = True
        if gap[i] < threshold or (threshold == 0 and gap[i] <= 1e-9):
            twins[i] = int(nearest_of[i])
            continue
        order.append(i)
        distance.append(float(gap[i]))
        to_i = space.to(i)
        closer = to_i < gap
        gap = np.where(closer, to_i, gap)
        nearest_of = np.where(closer, i, nearest_of)
    return Picked(order, distance, twins, threshold)
