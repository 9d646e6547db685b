"""Colour, blemish and texture measurements of the fruit, then a soft vote."""

from __future__ import annotations

from typing import Any

from ..registry import ModelFamily, Settings, register_model, signature_defaults
from ._photo import (
    PIXELS,
    fit_on_features,
    grade_features,
    photo_classifier,
    prepare_features,
)


def _params() -> dict[str, Any]:
    from ..classical import colour_vote

    return signature_defaults(colour_vote, exclude=("random_state",))


def _build(settings: Settings) -> Any:
    from ..classical import colour_vote

    return photo_classifier(settings, colour_vote)


register_model(
    ModelFamily(
        name="colour",
        build=_build,
        params=_params,
        features={**PIXELS, "kind": "colour-texture"},
        prepare=prepare_features,
        fit_fold=fit_on_features,
        grade_fold=grade_features,
        default_preset="colour-texture",
        presets={
            "colour-texture": {
                "description": "Beyond the study, the best classical model: photos decoded at "
                "256 px, 328 colour, blemish and texture features of the fruit measured at "
                "128 px (blemish shares at 3 scales, Lab / hue histograms, LBP, gradients, "
                "shape), soft vote of a logistic regression (C = 0.1) and a 500-tree forest.",
                "features": {"kind": "colour-texture", "size": 256},
            },
        },
    )
)
