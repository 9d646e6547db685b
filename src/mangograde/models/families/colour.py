"""Colour, blemish and texture measurements of the fruit, then a soft vote."""

from __future__ import annotations

from typing import Any

from ..registry import register_model, signature_defaults
from ._photo import photo_family


def _vote() -> Any:
    from ..classical import colour_vote

    return colour_vote


register_model(
    photo_family(
        "colour",
        _vote,
        lambda: signature_defaults(_vote(), exclude=("random_state",)),
        features={"kind": "colour-texture"},
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
