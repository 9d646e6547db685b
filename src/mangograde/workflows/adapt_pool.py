"""What ``mangograde adapt`` works on: the new photos, the parent's photos, both in one
pool whose features the family's ``prepare`` makes once; the fold models adapted on
some of the new photos; each fold model's features for the familiarity model.

A family that adapts by the registry's default ``adapt_fold`` (the classical ones: a
refit on the fold's training photos and the new ones, weighted, ``refit_with``) is refit
here through its own ``fit_fold`` on the pool's features: the same fit, without making
each photo's features again for every refit, part and familiarity model.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..data import Dataset, load_dataset
from ..images import ImageCache, load_images
from ..models.blend import in_columns
from ..models.registry import Adaptation, FoldData, ModelFamily
from ..runs.familiar_adapted import FoldFeatures
from ..runs.folder import HeldOut, Run

_TRAINED, _HELD = 500, 200  # parent photos a fold, at most, in the refit familiarity model
# a family that keeps the registry's default adapt_fold (refit_with) is refit on features
_REFIT = {f.name: f.default for f in dataclasses.fields(ModelFamily)}["adapt_fold"]


@dataclass
class NewPhotos:
    """The few photos to adapt on: decoded at the parent's geometry, with grade codes in
    the parent's order (None: ``--unlabelled``) and fruit groups."""

    dataset: Dataset
    images: np.ndarray
    codes: np.ndarray | None
    groups: np.ndarray | None


ParentPhotos = tuple[HeldOut, np.ndarray]  # the parent's held-out table, its photos decoded


def parent_photos(
    parent: Run, geometry: Any, cache: ImageCache | None, progress: bool | None
) -> ParentPhotos | None:
    """The parent's held-out table and its photos decoded (None when unreadable)."""
    held = parent.held_out
    root = parent.data_root
    if held is None or root is None or not root.is_dir():
        return None
    try:
        data = parent.settings.get("data") or {}
        dataset = load_dataset(root, data.get("labels"), data.get("groups"), parent.grades,
                               annotations=data.get("annotations", "latest"))  # fmt: skip
    except (OSError, SettingsError):
        return None
    where = dict(zip(dataset.image_ids, dataset.paths, strict=True))
    if any(i not in where for i in held.image_ids):
        return None
    loaded = load_images([where[i] for i in held.image_ids], geometry, cache, False, None, progress)
    if len(loaded.kept) != len(held.image_ids):
        return None
    return held, loaded.arrays


@dataclass
class Pool:
    """The parent's photos (when readable), then the new ones, with their grades; the
    family's ``prepare`` made their features once (``shared``)."""

    images: np.ndarray
    labels: np.ndarray  # the new photos' all 0 without labels
    labelled: bool
    groups: np.ndarray | None  # the new photos' fruits; each parent photo its own
    shared: Any
    held: HeldOut | None
    n_old: int

    @classmethod
    def of(cls, family: ModelFamily, settings: dict[str, Any], old: ParentPhotos | None,
           new: NewPhotos) -> Pool:  # fmt: skip
        held, photos = (None, new.images[:0]) if old is None else old
        codes = np.zeros(len(new.images), int) if new.codes is None else new.codes
        labels = np.concatenate([[] if held is None else held.true, codes]).astype(int)
        groups = None
        if new.groups is not None:
            own = np.array([f"parent-photo-{i}" for i in range(len(photos))], dtype=object)
            groups = np.concatenate([own, np.asarray(new.groups, dtype=object)])
        images = np.concatenate([photos, new.images])
        # features once for every fit (without grades nothing is refit or trained)
        shared = None
        if new.codes is not None:
            shared = family.prepare(family.build(copy.deepcopy(settings)), images)
        return cls(images, labels, new.codes is not None, groups, shared, held, len(photos))

    def fold(self, train: np.ndarray, test: np.ndarray, groups: bool = False) -> FoldData:
        return FoldData(self.images, self.labels, self.groups if groups else None, train, test,
                        self.shared)  # fmt: skip

    def trained(self, number: int) -> np.ndarray:
        """The parent's photos fold ``number`` was trained on."""
        return np.arange(0) if self.held is None else np.flatnonzero(self.held.folds != number)

    def grade(self, family: ModelFamily, models: list[Any], rows: np.ndarray, n: int) -> np.ndarray:
        """The mean of ``models``' probabilities of the new photos ``rows``."""
        fold = self.fold(rows[:0], self.n_old + rows)
        found = [in_columns(family.grade_fold(m, fold)[0], m.classes_, np.arange(n))
                 for m in models]  # fmt: skip
        return np.mean(found, axis=0)


Adapter = Callable[[Any, int, np.ndarray], Any]  # (fold model, fold number, new rows)


def one_blas_thread(family: ModelFamily) -> AbstractContextManager[Any]:
    """One BLAS thread while a classical family is refit: its many small fits (a logistic
    regression on about 1,000 x 328 features, a 600 x 600 eigen-decomposition) gain
    nothing from a second, and OpenBLAS's threads spin waiting for each other while
    anything else runs on the machine: one logistic fit of adapt's took 0.15 s on one
    thread against 7.4 s on two beside another job (benchmarks/RESULTS.md). Networks keep
    their threads."""
    if family.adapt_fold is not _REFIT:
        return nullcontext()
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    return threadpool_limits(1, user_api="blas")


def adapter(
    family: ModelFamily, parent: Run, pool: Pool, settings: dict[str, Any], progress: bool | None
) -> Adapter:
    """Adapt a fold model on the new photos ``rows``: by the family's refit on the features
    made once (a family with the registry's default ``adapt_fold``: the same fit as
    ``refit_with``), or by its own hook."""
    refits = family.adapt_fold is _REFIT and pool.labelled

    def adapt(model: Any, number: int, rows: np.ndarray) -> Any:
        old, new = pool.trained(number), pool.n_old + rows
        if refits:
            weight = settings["weight"]
            times = max(1, int(round(len(old) / len(rows) if weight is None else weight)))
            train = np.concatenate([old, np.repeat(new, times)])
            fresh = family.build(copy.deepcopy(parent.settings))
            family.fit_fold(fresh, pool.fold(train, train[:0]))
            return fresh
        before = (pool.images[old], pool.labels[old]) if pool.held is not None else (None, None)
        labels = pool.labels[new] if pool.labelled else None
        task = Adaptation(pool.images[new], labels, settings, *before, progress)
        return family.adapt_fold(model, task)

    return adapt


class PoolFeatures:
    """Each fold model's features of the parent's photos (at most ``_TRAINED`` it was
    trained on, ``_HELD`` it never saw) and of the new photos, for its familiarity model;
    the same :class:`FoldFeatures` again while they do not change (a classical family's
    features do not depend on its fit), so that its familiarity fits are made once."""

    def __init__(self, family: ModelFamily, pool: Pool, quantile: float) -> None:
        self.family, self.pool, self.quantile = family, pool, quantile
        self.seen: dict[int, FoldFeatures] = {}

    def features(self, model: Any, number: int) -> FoldFeatures | None:
        """Fold ``number``'s model's features (None: the family gives none)."""
        pool = self.pool
        trained = _sample(pool.trained(number), _TRAINED, number)
        assert pool.held is not None
        held = _sample(np.flatnonzero(pool.held.folds == number), _HELD, number)
        new = pool.n_old + np.arange(len(pool.images) - pool.n_old)
        got = self.family.embed_fold(model, pool.fold(np.concatenate([trained, held]), new))
        if got is None:
            return None
        old = np.asarray(got[0], dtype=np.float64)
        found = FoldFeatures(old[: len(trained)], old[len(trained) :], np.asarray(got[1], float))
        before = self.seen.get(number)
        if before is not None and before.same(found):
            return before
        self.seen[number] = found
        return found


def _sample(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
