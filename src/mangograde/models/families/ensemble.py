"""The weighted mean of runs trained on the same photos and folds (``mangograde ensemble``,
or ``train --preset best``, which trains its members first)."""

from __future__ import annotations

from typing import Any

from ...basics.errors import SettingsError
from ...images.geometry import Geometry, Resize
from ..registry import ModelFamily, Settings, register_model


def _build(settings: Settings) -> Any:
    from ..ensemble import RunMean

    return RunMean()


def _params() -> dict[str, Any]:
    return {"members": [], "sizes": [], "weights": [], "weights_rule": "equal"}


def _geometry(settings: Settings) -> Geometry:
    """Decoded once at the largest member's size; each member gets its own size."""
    sizes = settings["params"].get("sizes") or [settings["features"]["size"]]
    return Resize(max(int(s) for s in sizes))


def _members(settings: Settings) -> list[str]:
    members = settings["params"].get("members")
    if (
        not isinstance(members, list)
        or len(members) < 2
        or not all(isinstance(m, str) and m for m in members)
    ):
        raise SettingsError(
            f"An ensemble trains 2 or more presets or families (--set members=[colour-texture,"
            f"cnn-fast]), got {members!r}."
        )
    if settings["params"].get("weights_rule", "equal") not in ("equal", "fit"):
        raise SettingsError(
            f"weights_rule must be equal or fit, got {settings['params']['weights_rule']!r}."
        )
    return list(members)


def _cannot_adapt(model: Any, task: Any) -> Any:
    raise SettingsError(
        "An ensemble cannot be adapted as one model: adapt each of its member runs "
        "(mangograde adapt MEMBER ...), then make the ensemble of the adapted runs again "
        "(mangograde ensemble ADAPTED ADAPTED --out DIR)."
    )


register_model(
    ModelFamily(
        name="ensemble",
        description="The weighted mean of runs trained on the same photos and folds, each "
        "member with its own temperature (mangograde ensemble RUN RUN, or train --preset best).",
        build=_build,
        params=_params,
        features={"size": 128},
        geometry=_geometry,
        adapt_fold=_cannot_adapt,
        embed_fold=lambda model, fold: None,  # its familiarity is its members' (either)
        trusted=("mangograde.models.ensemble.RunMean",),
        members=_members,
        presets={
            "best": {
                "description": "The best grade measured on mango-grading: colour-texture and "
                "cnn-fast trained on the same folds, graded by the equal-weight mean of their "
                "calibrated probabilities (0.971 of fruits, no A<->C). Trains both members: "
                "about half an hour on 2 CPU cores for 600 photos.",
                "params": {"members": ["colour-texture", "cnn-fast"], "weights_rule": "equal"},
            },
        },
    )
)
