"""The familiarity model of an adapted run (``mangograde adapt``): the new photos count
as familiar, while what is like neither the parent's photos nor the new ones stays flagged.

Each fold model's familiarity model is fit on its features of the parent's training
photos and of the new photos, these counted as many times as make them weigh as much as
the parent's (a few new photos among hundreds would not move the model). One threshold
for the run: the higher of the run's quantile of the fold models' scores of the parent's
held-out photos and of the new photos' out-of-part scores (each part scored by models fit
without it), so that about as few new photos like these are flagged as the parent flags
of its own. Measured on aicup-sample in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..evaluation.familiarity import MAX_COMPONENTS, METHOD, FamiliarityModel, threshold_for

_EPS = 1e-12  # as evaluation.familiarity's


@dataclass(eq=False)
class FoldFeatures:
    """One fold model's features of (a sample of) the parent's photos it was trained on,
    of the parent's photos it never saw, and of every new photo; and the familiarity
    models fit on them so far, by the new photos they took (so that models whose features
    are the same, a classical family's, share their fits)."""

    trained: np.ndarray
    held: np.ndarray
    new: np.ndarray
    fits: dict[bytes, FamiliarityModel] = field(default_factory=dict)

    def fit(self, rows: np.ndarray) -> FamiliarityModel:
        """A model of the parent's training photos and the new photos ``rows``, these
        counted as many times as make them weigh as much."""
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key not in self.fits:
            times = max(1, int(round(len(self.trained) / max(1, len(rows)))))
            both = np.concatenate([self.trained, self.new[rows]])
            counts = np.concatenate([np.ones(len(self.trained)), np.full(len(rows), times)])
            self.fits[key] = counted_fit(both, counts)
        return self.fits[key]

    def same(self, other: FoldFeatures) -> bool:
        """Whether ``other`` holds the same features."""
        return all(np.array_equal(getattr(self, k), getattr(other, k))
                   for k in ("trained", "held", "new"))  # fmt: skip


def counted_fit(
    features: np.ndarray, counts: np.ndarray, max_components: int = MAX_COMPONENTS
) -> FamiliarityModel:
    """:meth:`FamiliarityModel.fit` of the photos each counted ``counts`` times (whole
    numbers), from the distinct photos' Gram matrix: the same model, a fraction of the
    work (a repeated photo would add a row and a column to the Gram matrix each time).

    Parameters
    ----------
    features : ndarray
        ``(n_photos, n_features)``.
    counts : ndarray
        How many times each photo counts.

    Returns
    -------
    FamiliarityModel
        Without a threshold.
    """
    norms = np.linalg.norm(np.asarray(features, dtype=np.float64), axis=1, keepdims=True)
    x = np.asarray(features, dtype=np.float64) / np.maximum(norms, _EPS)
    w = np.asarray(counts, dtype=np.float64)
    total = float(w.sum())
    if total < 3 or not np.isfinite(x).all():
        return FamiliarityModel.fit(np.repeat(x, w.astype(int), axis=0))  # says what is wrong
    d = x.shape[1]
    center = w @ x / total
    centered = x - center
    gram = centered @ centered.T
    diagonal = np.diag(gram)
    # Ledoit-Wolf's shrinkage (evaluation.familiarity.ledoit_wolf_shrinkage) of the rows
    # repeated, from the distinct rows' Gram matrix
    trace = float(w @ diagonal) / total
    mu = trace / d
    beta_sum = float(w @ diagonal**2)
    delta_sum = float(w @ gram**2 @ w) / total**2
    delta = (delta_sum - 2.0 * mu * trace + d * mu**2) / d
    beta = min((beta_sum / total - delta_sum) / (d * total), delta)
    shrinkage = 0.0 if beta <= 0 else float(beta / delta)
    root = np.sqrt(w)
    values, vectors = np.linalg.eigh(root[:, None] * gram * root[None, :])
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    rank = int(np.sum(values > max(values[0], _EPS) * 1e-10))
    k = max(1, min(max_components, rank, d))
    axes = (centered.T @ (root[:, None] * vectors[:, :k])) / np.sqrt(np.maximum(values[:k], _EPS))
    variances = values / total
    along = (1 - shrinkage) * variances[:k] + shrinkage * mu
    off = (1 - shrinkage) * variances[k:rank].sum() / max(d - k, 1) + shrinkage * mu
    return FamiliarityModel(center, axes.T, np.diag(1.0 / np.maximum(along, _EPS)),
                            residual_precision=1.0 / max(off, _EPS))  # fmt: skip


def adapted_familiarity(
    features: Sequence[FoldFeatures],
    rows: np.ndarray,
    parts: Sequence[np.ndarray],
    quantile: float,
) -> tuple[list[FamiliarityModel], dict[str, Any]]:
    """Each fold's familiarity model fit with the new photos ``rows`` and the run's one
    threshold; and the record for metrics.json.

    Parameters
    ----------
    features : sequence of FoldFeatures
        Each fold model's features.
    rows : ndarray
        The new photos the fold models were adapted on (indices into ``features[i].new``).
    parts : sequence of ndarray
        Parts that divide ``rows``: each is scored by models fit without it (none: the
        threshold is set on the parent's held-out photos alone).
    quantile : float
        The run's ``familiar.quantile``.

    Returns
    -------
    models : list of FamiliarityModel
        With the threshold, and as ``reference`` (drift) the fold's scores of the parent's
        held-out photos and of the new photos out of their part.
    record : dict
    """
    final = [f.fit(rows) for f in features]
    old = [m.score(f.held) for m, f in zip(final, features, strict=True)]
    out = np.zeros((len(features), len(features[0].new)))
    for part in parts:
        rest = np.setdiff1d(rows, part)
        for i, f in enumerate(features):
            out[i, part] = f.fit(rest).score(f.new[part])
    on_old = threshold_for(np.concatenate(old), quantile)
    new_scores = out[:, rows].mean(axis=0)
    on_new = threshold_for(new_scores, quantile) if len(parts) else None
    threshold = on_old if on_new is None else max(on_old, on_new)
    models = [
        replace(
            m, threshold=threshold, reference=np.concatenate([o, s[rows]] if len(parts) else [o])
        )
        for m, o, s in zip(final, old, out, strict=True)
    ]
    record = {
        "method": METHOD,
        "quantile": quantile,
        "threshold": threshold,
        "threshold_parent_photos": on_old,
        "threshold_new_photos": on_new,
        "n_parts": len(parts),
        "n_features": int(final[0].center.shape[0]),
        "parent_held_out_flagged": float(np.mean(np.concatenate(old) > threshold)),
        "new_photos_flagged": float(np.mean(new_scores > threshold)) if len(parts) else None,
    }
    return models, record


def new_photo_flags(
    models: Sequence[FamiliarityModel], features: Sequence[FoldFeatures], rows: np.ndarray
) -> np.ndarray:
    """Which new photos ``rows`` the models flag unfamiliar (their mean score above the
    threshold, as a grader scores)."""
    scores = [m.score(f.new[rows]) for m, f in zip(models, features, strict=True)]
    return ~(np.mean(scores, axis=0) <= models[0].threshold)
