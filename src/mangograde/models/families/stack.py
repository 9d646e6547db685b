"""A stacked ensemble of other families (default transfer, cnn-fast, colour-texture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...basics.errors import SettingsError
from ...images.geometry import Geometry, Resize
from ..registry import ModelFamily, Settings, register_model, signature_defaults

_FROM_RUN = ("seed", "checkpoint_dir", "resume", "progress")


def _estimator() -> Any:
    from ..stack import StackedGrader

    return StackedGrader


def _params() -> dict[str, Any]:
    from ..stack import DEFAULT_MEMBERS

    return signature_defaults(_estimator(), exclude=_FROM_RUN, members=list(DEFAULT_MEMBERS))


def _build(settings: Settings) -> Any:
    try:
        return _estimator()(**settings["params"], seed=settings["seed"])
    except TypeError as exc:
        raise SettingsError(f"Invalid settings for --model stack: {exc}") from None


def _geometry(settings: Settings) -> Geometry:
    """Decoded once at the largest member's size; each member gets its own size."""
    from ..stack import decode_size

    members = _build(settings).resolved_members()
    return Resize(max(decode_size(member) for _, member in members))


def _check(settings: Settings) -> None:
    _build(settings).check_params()


def _attach(model: Any, checkpoints: Path | None, resume: bool, progress: bool | None) -> None:
    model.attach(checkpoints, resume, progress)


def _cannot_adapt(model: Any, task: Any) -> Any:
    raise SettingsError(
        "A stack cannot be adapted as one model: adapt its member runs (transfer, cnn-fast, "
        "colour-texture) and stack them again."
    )


register_model(
    ModelFamily(
        name="stack",
        adapt_fold=_cannot_adapt,
        description="A stacked ensemble: each member's out-of-fold probabilities from "
        "fruit-grouped inner folds, combined by a logistic regression.",
        build=_build,
        params=_params,
        features={},
        geometry=_geometry,
        check=_check,
        attach=_attach,
        fold_scores=lambda model: model.inner_scores(),
        draws_progress=True,
        trusted=("mangograde.models.stack.StackedGrader",),
        presets={
            "stack-study-colour": {
                "description": "The best measured on mango-grading (0.932 on 5 folds by "
                "fruit, no A/C confusion, ECE 0.017): the study's CNN (224 px) and "
                "colour-texture, stacked on 3 inner folds. Trains each 4 times a fold: use "
                "a GPU.",
                "params": {"members": ["cnn-study", "colour-texture"]},
            },
        },
    )
)
