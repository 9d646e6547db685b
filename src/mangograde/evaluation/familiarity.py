"""Has the grader seen photos like these? A photo's distance from the training photos, in
the model's own features (a network's penultimate layer, a classical model's vector).

Features are l2-normalised (a camera's gain scales them) and scored by their Mahalanobis
distance under the Ledoit-Wolf shrunk covariance of the training features, computed
exactly in the full feature space without forming it: the covariance's first principal
axes (at most ``MAX_COMPONENTS``) each with its own variance, and the rest of the space
(where most of a photo from another camera lies) with one shared variance. Projecting on
the axes alone, as a plain PCA would, misses that residual: on the transfer backbone's
features it flagged none of another orchard's photos (benchmarks/RESULTS.md). A photo
whose score is above the threshold is unfamiliar; the threshold is set on out-of-fold
photos, so that about ``1 - quantile`` of photos like the training ones are flagged. A
photo whose features are not finite (a broken photo) scores ``inf``: unfamiliar, never
silently familiar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..basics.errors import SettingsError

MAX_COMPONENTS = 64
METHOD = "mahalanobis-ledoit-wolf-residual"  # named in metrics.json and grader.json
_EPS = 1e-12


def _normalised(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (n_photos, n_features), got shape {features.shape}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, _EPS)


def ledoit_wolf_shrinkage(centered: np.ndarray) -> float:
    """Ledoit and Wolf's shrinkage of the covariance of ``centered`` rows towards a scaled
    identity, as scikit-learn's ``ledoit_wolf_shrinkage`` computes it, from the photos'
    Gram matrix (``n x n``) instead of the ``d x d`` covariance: a 49,152-pixel vector
    costs no more than a 300-feature one."""
    n, d = centered.shape
    gram = centered @ centered.T
    trace = float(np.trace(gram)) / n
    mu = trace / d
    beta_sum = float(np.sum(np.diag(gram) ** 2))
    delta_sum = float(np.sum(gram**2)) / n**2
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta <= 0 else float(beta / delta)


@dataclass(frozen=True)
class FamiliarityModel:
    """What the training photos' features look like (see the module's docstring)."""

    center: np.ndarray  # (d,) mean of the normalised features
    components: np.ndarray  # (k, d) principal axes
    precision: np.ndarray  # (k, k) inverse of the shrunk covariance along the axes
    threshold: float | None = None  # a score above it is unfamiliar
    reference: np.ndarray | None = None  # scores of held-out photos it never saw (drift)
    residual_precision: float = 0.0  # inverse of the shrunk variance off the axes

    @classmethod
    def fit(cls, features: np.ndarray, max_components: int = MAX_COMPONENTS) -> FamiliarityModel:
        x = _normalised(features)
        if len(x) < 3 or not np.isfinite(x).all():
            raise SettingsError(
                f"A familiarity model needs the finite features of at least 3 training "
                f"photos; got {len(x)} photos{'' if np.isfinite(x).all() else ' with NaN'}."
            )
        n, d = x.shape
        center = x.mean(axis=0)
        centered = x - center
        shrinkage = ledoit_wolf_shrinkage(centered)
        mu = float(np.sum(centered**2)) / n / d
        # the covariance's eigenvectors from the Gram matrix's (n x n, n < d as a rule)
        values, vectors = np.linalg.eigh(centered @ centered.T)
        order = np.argsort(values)[::-1]
        values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
        rank = int(np.sum(values > max(values[0], _EPS) * 1e-10))
        k = max(1, min(max_components, rank, d))
        axes = (centered.T @ vectors[:, :k]) / np.sqrt(np.maximum(values[:k], _EPS))
        variances = values / n
        along = (1 - shrinkage) * variances[:k] + shrinkage * mu
        off = (1 - shrinkage) * variances[k:rank].sum() / max(d - k, 1) + shrinkage * mu
        return cls(center, axes.T, np.diag(1.0 / np.maximum(along, _EPS)),
                   residual_precision=1.0 / max(off, _EPS))  # fmt: skip

    def score(self, features: np.ndarray) -> np.ndarray:
        """Each photo's Mahalanobis distance from the training photos (``inf`` where its
        features are not finite)."""
        x = _normalised(features)
        finite = np.isfinite(x).all(axis=1)
        centered = np.where(finite[:, None], x, 0.0) - self.center
        projected = centered @ self.components.T
        squared = np.einsum("ij,jk,ik->i", projected, self.precision, projected)
        residual = np.sum(centered**2, axis=1) - np.sum(projected**2, axis=1)
        squared = squared + self.residual_precision * np.maximum(residual, 0.0)
        return np.where(finite, np.sqrt(np.maximum(squared, 0.0)), np.inf)

    def flags(self, features: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise SettingsError("This familiarity model has no threshold yet.")
        return self.score(features) > self.threshold

    def with_threshold(self, held_out_scores: np.ndarray, quantile: float) -> FamiliarityModel:
        """The model with its threshold at ``quantile`` of scores of photos it never saw."""
        return replace(self, threshold=threshold_for(held_out_scores, quantile))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays to store (no pickle); :meth:`from_arrays` reads them back."""
        threshold = np.nan if self.threshold is None else self.threshold
        reference = np.zeros(0) if self.reference is None else self.reference
        return {
            f"{prefix}center": self.center,
            f"{prefix}components": self.components,
            f"{prefix}precision": self.precision,
            f"{prefix}residual_precision": np.array(self.residual_precision),
            f"{prefix}threshold": np.array(threshold),
            f"{prefix}reference": np.asarray(reference, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> FamiliarityModel:
        try:
            center = np.asarray(arrays[f"{prefix}center"], dtype=np.float64)
            components = np.asarray(arrays[f"{prefix}components"], dtype=np.float64)
            precision = np.asarray(arrays[f"{prefix}precision"], dtype=np.float64)
            threshold = float(arrays[f"{prefix}threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"Stored familiarity arrays are incomplete ({exc}).") from None
        k, d = components.shape if components.ndim == 2 else (-1, -1)
        if center.shape != (d,) or precision.shape != (k, k):
            raise SettingsError(
                f"Stored familiarity arrays do not fit together: center {center.shape}, "
                f"components {components.shape}, precision {precision.shape}."
            )
        reference = arrays.get(f"{prefix}reference")
        reference = None if reference is None or len(reference) == 0 else np.asarray(reference)
        # runs of the first familiarity release stored no residual: they score on the axes
        residual = float(arrays.get(f"{prefix}residual_precision", 0.0))
        if not (np.isfinite(residual) and residual >= 0):
            raise SettingsError(f"Stored familiarity residual precision {residual} is not a "
                                f"finite non-negative number.")  # fmt: skip
        return cls(center, components, precision, None if np.isnan(threshold) else threshold,
                   reference, residual)  # fmt: skip


@dataclass(frozen=True)
class EitherFamiliarity:
    """An ensemble's familiarity for one fold: each member's own model on its own columns
    of the features, scored as the largest share of its threshold (above 1: some member
    finds the photo unfamiliar), so the threshold is 1."""

    members: tuple[FamiliarityModel, ...]
    widths: tuple[int, ...]  # each member's feature columns, in order

    def __post_init__(self) -> None:
        if len(self.members) != len(self.widths) or not self.members:
            raise SettingsError("An ensemble's familiarity needs a width a member.")
        if any(m.threshold is None or not m.threshold > 0 for m in self.members):
            raise SettingsError("An ensemble's familiarity needs each member's threshold.")

    threshold = 1.0

    @property
    def reference(self) -> np.ndarray | None:
        """The held-out photos' scores (the members held out the same photos, in order)."""
        found = [m.reference for m in self.members]
        if any(r is None for r in found) or len({len(r) for r in found}) != 1:  # type: ignore[arg-type]
            return None
        return np.max([r / m.threshold for r, m in zip(found, self.members, strict=True)], axis=0)  # type: ignore[operator]

    def score(self, features: np.ndarray) -> np.ndarray:
        ends = np.cumsum([0, *self.widths])
        if features.shape[1] != ends[-1]:
            raise SettingsError(
                f"An ensemble's familiarity reads {ends[-1]} feature columns, got "
                f"{features.shape[1]}."
            )
        return np.max([m.score(features[:, a:b]) / m.threshold  # type: ignore[operator]
                       for m, a, b in zip(self.members, ends[:-1], ends[1:], strict=True)],
                      axis=0)  # fmt: skip

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        found = {f"{prefix}either/widths": np.asarray(self.widths, dtype=np.int64)}
        for i, member in enumerate(self.members):
            found.update(member.arrays(f"{prefix}either/{i}/"))
        return found

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> EitherFamiliarity:
        widths = tuple(int(w) for w in np.asarray(arrays[f"{prefix}either/widths"]).ravel())
        members = tuple(FamiliarityModel.from_arrays(arrays, f"{prefix}either/{i}/")
                        for i in range(len(widths)))  # fmt: skip
        return cls(members, widths)


def familiarity_from_arrays(
    arrays: dict[str, np.ndarray], prefix: str = ""
) -> FamiliarityModel | EitherFamiliarity:
    """A fold's stored familiarity model: its own, or an ensemble's members'."""
    if f"{prefix}either/widths" in arrays:
        return EitherFamiliarity.from_arrays(arrays, prefix)
    return FamiliarityModel.from_arrays(arrays, prefix)


def check_quantile(quantile: object) -> float:
    number = isinstance(quantile, (int, float)) and not isinstance(quantile, bool)
    if not (number and 0.5 <= quantile < 1):  # type: ignore[operator]
        raise SettingsError(
            f"familiar.quantile must be from 0.5 to below 1 (0.99 flags about 1% of photos "
            f"like the training ones), got {quantile!r}."
        )
    return float(quantile)  # type: ignore[arg-type]


def threshold_for(held_out_scores: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of finite out-of-fold scores."""
    scores = np.asarray(held_out_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise SettingsError("No finite out-of-fold familiarity score to set a threshold on.")
    return float(np.quantile(scores, check_quantile(quantile)))


def auroc(familiar: np.ndarray, other: np.ndarray) -> float:
    """How well the scores tell ``other`` photos from ``familiar`` ones: 0.5 not at all,
    1.0 always (every other photo scores higher)."""
    from sklearn.metrics import roc_auc_score

    familiar, other = np.asarray(familiar, float), np.asarray(other, float)
    finite = np.nan_to_num(np.concatenate([familiar, other]), posinf=np.finfo(float).max)
    truth = np.concatenate([np.zeros(len(familiar)), np.ones(len(other))])
    return float(roc_auc_score(truth, finite))


def one_sided_ks(batch: np.ndarray, reference: np.ndarray) -> float:
    """The p-value that ``batch`` scores no higher than ``reference``: the two-sample
    Kolmogorov-Smirnov statistic ``D = max(F_reference - F_batch)`` under Smirnov's
    asymptotic law ``exp(-2 n D^2)`` with ``n = n_b n_r / (n_b + n_r)``. Numpy only (an
    exported grader has no scipy); slightly conservative on small windows."""
    batch, reference = np.sort(batch), np.sort(reference)
    pooled = np.concatenate([batch, reference])
    below_batch = np.searchsorted(batch, pooled, side="right") / len(batch)
    below_reference = np.searchsorted(reference, pooled, side="right") / len(reference)
    distance = max(0.0, float((below_reference - below_batch).max()))
    n = len(batch) * len(reference) / (len(batch) + len(reference))
    return float(min(1.0, np.exp(-2.0 * n * distance**2)))


def drift_pvalue(scores: list[np.ndarray], references: list[np.ndarray | None]) -> float | None:
    """Whether a batch of photos scores higher than photos like the training ones: for each
    fold model, a one-sided two-sample Kolmogorov-Smirnov test (:func:`one_sided_ks`) of
    its scores of the batch against its scores of its own held-out photos (both from a
    model blind to them); the smallest p-value times the number of models (Bonferroni).
    None without references or with fewer than 2 scores. Broken photos (``inf``) count as
    the highest scores."""
    found = []
    for batch, reference in zip(scores, references, strict=True):
        if reference is None or len(reference) == 0:
            return None
        batch = np.nan_to_num(np.asarray(batch, float), nan=np.inf)
        if len(batch) < 2:
            return None
        top = np.finfo(float).max
        found.append(one_sided_ks(np.minimum(batch, top), np.asarray(reference, float)))
    return float(min(1.0, min(found) * len(found))) if found else None


SMALL_REFERENCE = 100  # held-out photos below which a 1% flag rate cannot be set


@dataclass(frozen=True)
class Familiarity:
    """A grader's familiarity: one :class:`FamiliarityModel` a fold model, all with the
    run's threshold. A photo's score is the mean of the fold models' scores; above the
    threshold (or not finite: a broken photo) it is unfamiliar."""

    models: tuple[FamiliarityModel | EitherFamiliarity, ...]

    def __post_init__(self) -> None:
        if not self.models or any(m.threshold is None for m in self.models):
            raise SettingsError("A grader's familiarity needs its models' threshold.")

    @property
    def threshold(self) -> float:
        return float(self.models[0].threshold)  # type: ignore[arg-type]

    @property
    def reference_size(self) -> int:
        """Held-out photos the threshold was set on (every fold's)."""
        return sum(0 if m.reference is None else len(m.reference) for m in self.models)

    def scores(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """``(n_models, n_photos)`` from each fold model's features of the photos."""
        return np.stack([m.score(f) for m, f in zip(self.models, features, strict=True)])

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Which photos of these ``(n_models, n_photos)`` scores are unfamiliar."""
        mean = np.asarray(scores, float).mean(axis=0)
        return ~(mean <= self.threshold)

    def drift(self, scores: np.ndarray) -> float | None:
        """The p-value that photos of these scores are like the held-out photos."""
        return drift_pvalue(list(scores), [m.reference for m in self.models])

    def notice(self) -> str | None:
        """What the user should know of a threshold set on few held-out photos."""
        n = self.reference_size
        if n >= SMALL_REFERENCE:
            return None
        return (
            f"The run's familiarity threshold was set on only {n} held-out photos: "
            f"about {1 / (n + 1):.0%} of photos like the training ones may be left to check "
            f"as unfamiliar ({SMALL_REFERENCE} or more keep it near 1%)."
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays of every fold's model (no pickle), for an export."""
        found: dict[str, np.ndarray] = {}
        for i, model in enumerate(self.models):
            found.update(model.arrays(f"{i}/"))
        return found

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_models: int) -> Familiarity:
        return cls(tuple(familiarity_from_arrays(arrays, f"{i}/") for i in range(n_models)))
