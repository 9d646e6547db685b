"""A Random Forest on raw pixels with flip/rotate copies (the study's third family)."""

from __future__ import annotations

from typing import Any

from ..registry import register_model, signature_defaults
from ._photo import photo_family


def _params() -> dict[str, Any]:
    from ..classical import ReducedForest
    from ..forest import GroupForestClassifier

    return signature_defaults(
        GroupForestClassifier,
        ReducedForest,
        exclude=("random_state", "progress", "forest"),
        n_jobs=-1,
    )


def _forest(selection_scaling: Any = None, n_components: Any = None, **params: Any) -> Any:
    """The forest, behind PCA or importance-based selection when one is asked for."""
    from ..classical import ReducedForest
    from ..forest import GroupForestClassifier

    forest = GroupForestClassifier(**params)
    if selection_scaling is None and n_components is None:
        return forest
    return ReducedForest(forest, selection_scaling, n_components)


def oob_scores(model: Any) -> dict[str, float]:
    """Raw and honest OOB accuracy of a fitted forest run (``oob_score=True``)."""
    forest = model.classifier_
    forest = getattr(forest, "forest_", forest)
    found = {}
    for name, key in (("oob_score_", "oob_raw"), ("honest_oob_score_", "oob_honest")):
        if hasattr(forest, name):
            found[key] = float(getattr(forest, name))
    return found


register_model(
    photo_family(
        "rf",
        lambda: _forest,
        _params,
        dtype="uint8",  # the forest splits 8-bit pixels exactly, in a quarter of the memory
        fold_scores=oob_scores,
        default_preset="rf-study",
        presets={
            "rf-study": {
                "description": "The study's forest: 128 x 128 RGB pixels, every photo flipped "
                "and rotated (x8), 1,000 trees, raw and honest OOB. Bootstrap by fruit; 3 pixels "
                "tried per split (`mangograde sweep --param max_features`: 3 beat 10, 30 and the "
                "default 221 on mango-grading, and is far faster on 8x the rows).",
                "features": {"size": 128, "expand": "flip-rotate"},
                "params": {"n_estimators": 1000, "max_features": 3, "oob_score": True},
            },
        },
    )
)
