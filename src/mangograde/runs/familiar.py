"""Each fold's familiarity model, fit at train time on the fold model's own features of
its training photos, with one threshold for the run set on out-of-fold photos only
(photos the fold's model never saw)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..evaluation.familiarity import METHOD, FamiliarityModel, check_quantile, threshold_for


def familiar_quantile(settings: dict[str, Any]) -> float:
    section = settings.get("familiar")
    quantile = section.get("quantile", 0.99) if isinstance(section, dict) else 0.99
    return check_quantile(quantile)


def wants_not_a_fruit(settings: dict[str, Any]) -> bool:
    """``familiar.not_a_fruit`` (default true): whether the run gets a not-a-fruit check."""
    section = settings.get("familiar")
    wanted = section.get("not_a_fruit", True) if isinstance(section, dict) else True
    if not isinstance(wanted, bool):
        raise SettingsError(
            f"familiar.not_a_fruit must be true or false (false: no not-a-fruit check), "
            f"got {wanted!r}."
        )
    return wanted


def fit_familiarity(
    features: Sequence[tuple[np.ndarray, np.ndarray]], quantile: float
) -> tuple[list[FamiliarityModel], dict[str, Any]]:
    """One familiarity model a fold (``features``: each fold model's features of its
    training and held-out photos), all with the threshold at ``quantile`` of the pooled
    out-of-fold scores; and the record for metrics.json."""
    fitted, held_scores = [], []
    for train, test in features:
        familiar = FamiliarityModel.fit(train)
        fitted.append(familiar)
        held_scores.append(familiar.score(test))
    scores = np.concatenate(held_scores)
    threshold = threshold_for(scores, quantile)
    with_threshold = [replace(f, threshold=threshold, reference=held)
                      for f, held in zip(fitted, held_scores, strict=True)]  # fmt: skip
    record = {
        "method": METHOD,
        "quantile": quantile,
        "threshold": threshold,
        "n_features": int(fitted[0].center.shape[0]),
        "n_components": int(fitted[0].components.shape[0]),  # the rest: one variance
        "held_out_flagged": float(np.mean(scores > threshold)),
        "n_held_out": int(len(scores)),
    }
    return with_threshold, record
