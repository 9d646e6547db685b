"""CNNs trained from scratch (the study's first family), alone or blended over folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...basics.errors import SettingsError
from ...images.geometry import FruitCrop, Geometry, Resize, resize_for
from ..registry import FoldData, ModelFamily, Settings, register_model, signature_defaults

# Set per fold by the run (size and seed come from their own sections).
_FROM_RUN = ("size", "seed", "checkpoint_dir", "resume", "progress")
# The transfer family's settings (a pretrained backbone), not this one's.
_PRETRAINED = ("backbone", "weights", "bn_momentum", "body_lr", "freeze_epochs")


def _params() -> dict[str, Any]:
    from ..cnn_estimator import CNNClassifier

    return signature_defaults(CNNClassifier, exclude=_FROM_RUN + _PRETRAINED)


def _build(settings: Settings) -> Any:
    from ..blend import FoldEnsemble
    from ..cnn_estimator import CNNClassifier

    params = {**settings["params"], "size": settings["features"]["size"]}
    try:
        network = CNNClassifier(**params, seed=settings["seed"])
    except TypeError as exc:
        raise SettingsError(f"Invalid settings for --model cnn: {exc}") from None
    blend = settings["blend"]
    if blend["folds"] > 1:
        return FoldEnsemble(network, blend["folds"], blend["voting"], settings["seed"])
    return network


CROPS = ("none", "fruit")


def _geometry(settings: Settings) -> Geometry:
    """Decoded at size * 256 / 224, then centre-cropped to size (the study's 256 -> 224);
    ``crop=fruit`` decodes a square around the fruit instead of the whole photo."""
    side = resize_for(settings["features"]["size"])
    return FruitCrop(side) if settings["features"].get("crop") == "fruit" else Resize(side)


def _check(settings: Settings) -> None:
    """An unknown crop; early stopping that would look at the photos the run is scored on."""
    crop = settings["features"].get("crop", "none")
    if crop not in CROPS:
        raise SettingsError(
            f"Unknown crop {crop!r}: none (the whole photo) or fruit (a square around the fruit)."
        )
    folds = settings["blend"]["folds"]
    if not isinstance(folds, int) or folds < 1:
        raise SettingsError(
            f"--folds (blend.folds) must be 1 (one model) or more to blend, got {folds!r}."
        )
    params = settings["params"]
    if params["patience"] and not params["validation_fraction"] and settings["blend"]["folds"] < 2:
        raise SettingsError(
            "patience (early stopping) needs a validation set apart from the held-out photos: "
            "set params.validation_fraction (e.g. 0.15), or blend with --folds K, whose "
            "models each stop on their own validation fold."
        )


def _fit_fold(model: Any, fold: FoldData) -> None:
    """A single CNN scores the held-out photos after every epoch, for its curves only
    (a blend's members are each scored on their own validation fold)."""
    from ..blend import FoldEnsemble

    train, test = fold.train, fold.test
    photos, grades = fold.images[train], fold.labels[train]
    if isinstance(model, FoldEnsemble) or not len(test):
        model.fit(photos, grades, fold.train_groups)
    else:
        model.fit(photos, grades, fold.train_groups, (fold.images[test], fold.labels[test]))


def _attach(model: Any, checkpoints: Path | None, resume: bool, progress: bool | None) -> None:
    """Point a CNN, or every CNN of a blend (fitted members too), at its checkpoint folder."""
    for estimator in [model, *getattr(model, "estimators_", [])]:
        for key in estimator.get_params():
            if key.endswith("checkpoint_dir"):
                prefix = key[: -len("checkpoint_dir")]
                estimator.set_params(
                    **{key: checkpoints, f"{prefix}resume": resume, f"{prefix}progress": progress}
                )


def _history(model: Any, fold: int) -> list[dict[str, Any]]:
    """Every epoch of every CNN in ``model``."""
    members = [("", model)] if hasattr(model, "history_") else []
    members += [(i, m) for i, m in enumerate(getattr(model, "estimators_", []))]
    return [
        {"fold": fold, "member": member, **record}
        for member, network in members
        for record in getattr(network, "history_", [])
    ]


_FAST = {
    "architecture": "fast-cnn",
    "activation": "relu",
    "dropout": 0.2,
    "optimizer": "adamw",
    "lr": 0.002,
    "weight_decay": 0.05,
    "warmup_epochs": 1,
    "epochs": 50,
    "batch_size": 16,
    "label_smoothing": 0.1,
    "ema": 0.99,
    "tta": True,
}


# adapt's defaults (benchmarks/RESULTS.md, issue 27): a network trained from scratch gains
# most from fine-tuning all of it; a pretrained backbone keeps its body and retrains its
# last layer (fine-tuning that body on a CPU takes minutes a fold).
ADAPT_WHOLE = {"body": "train", "epochs": 15, "lr": 0.003}
ADAPT_LAST_LAYER = {"body": "frozen", "epochs": 150, "lr": 0.03}


def adapt_network(defaults: dict[str, Any]) -> Any:
    """The ``adapt_fold`` hook of a network family: from the fold's weights, BatchNorm
    statistics measured again on the new photos, then (with grades) a short fine-tuning;
    ``adapt.epochs``, ``adapt.lr`` and ``adapt.body`` left unset take ``defaults``."""

    def adapt_fold(model: Any, task: Any) -> Any:
        given = {k: task.settings.get(k) for k in ("epochs", "lr", "body")}
        options = {k: v if v is not None else defaults[k] for k, v in given.items()}
        return model.adapt(task.images, task.labels, progress=task.progress, **options)

    return adapt_fold


# What every family trained by CNNClassifier shares (the transfer family too).
NETWORK_FAMILY: dict[str, Any] = {
    "build": _build,
    # folds > 1: that many models on different fruit-grouped splits, then voting.
    "sections": {"blend": {"folds": 1, "voting": "vote"}},
    "geometry": _geometry,
    "check": _check,
    "fit_fold": _fit_fold,
    "adapt_fold": adapt_network(ADAPT_WHOLE),
    "attach": _attach,
    "history": _history,
    "draws_progress": True,
    "runtime": ("device", "threads"),
}

register_model(
    ModelFamily(
        name="cnn",
        params=_params,
        features={"size": 128, "crop": "none"},
        distributed=True,
        default_preset="cnn-fast",
        **NETWORK_FAMILY,
        presets={
            "cnn-study": {
                "description": "The study's CNN: 224 px (resize 256, centre crop), 10 conv "
                "layers in 5 blocks (PReLU then BatchNorm, max-pooling), dense 512-256-64 with "
                "dropout 0.5, SGD (lr 0.01, momentum 0.9, weight decay 5e-4, cosine), 30 epochs "
                "of batches of 32, the study's flips, rotation, perspective and colour jitter. "
                "Slow on a CPU: use a GPU.",
                "features": {"size": 224},
                "params": {"architecture": "study-cnn"},
            },
            "cnn-fast": {
                "description": "Built for CPUs: fast-cnn (stride-2 stem and max-pool, residual "
                "blocks 32-256, average + max pooling; 84 M multiply-adds against study-cnn's "
                "1,075 M) at 128 px, AdamW (lr 0.002, weight decay 0.05, 1 warm-up epoch, "
                "cosine), 50 epochs of batches of 16, label smoothing 0.1, a moving average of "
                "the weights (0.99), flip test-time augmentation, the study's augmentation.",
                "features": {"size": 128},
                "params": _FAST,
            },
        },
    )
)
