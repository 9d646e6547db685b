"""Grad-CAM (captum's LayerGradCam) for CNN runs: where the last feature maps looked."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..basics.errors import SettingsError
from .grader import Grader

SUPPORT = 0.5  # a pixel supports the grade where its map reaches half the maximum
MIN_SIDE = 8


def _networks(predictor: Grader) -> list[Any]:
    """Every CNNClassifier of the run (fold models and blend members)."""
    found = []
    for model in predictor.models:
        for member in getattr(model, "estimators_", [model]):
            if not hasattr(member, "module_"):
                raise SettingsError(
                    "Grad-CAM looks inside a CNN's feature maps, and this run's model is not "
                    "a CNN. Use --method lime, which explains any model."
                )
            found.append(member)
    return found


def cam_layer(network: nn.Module, x: torch.Tensor) -> nn.Module:
    """The deepest layer of ``network.features`` whose maps are still at least
    ``MIN_SIDE`` wide for input ``x``: the last maps of a small input are too coarse to
    point at a blemish (fast-cnn's are 4 x 4 at 128 px, 1 x 1 at 32 px)."""
    sides: list[tuple[nn.Module, int]] = []
    hooks = [
        layer.register_forward_hook(lambda m, _, out: sides.append((m, out.shape[-1])))
        for layer in network.features
        if not isinstance(layer, nn.MaxPool2d | nn.AvgPool2d)
    ]
    try:
        with torch.no_grad():
            network.features(x)
    finally:
        for hook in hooks:
            hook.remove()
    wide = [layer for layer, side in sides if side >= MIN_SIDE]
    return wide[-1] if wide else sides[0][0]


def gradcam_regions(
    predictor: Grader, image: np.ndarray, target: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the CNN's centre crop, mean Grad-CAM map 0-1, support mask) for ``target``."""
    from captum.attr import LayerAttribution, LayerGradCam

    from ..features.transforms import crop_batch, eval_batch

    maps = []
    view = None
    for estimator in _networks(predictor):
        photo = estimator._photos(image[None])
        view = crop_batch(photo, estimator.size)[0].permute(1, 2, 0).numpy()
        network = estimator.module_.eval()
        device = next(network.parameters()).device
        x = eval_batch(photo, estimator.size).to(device).requires_grad_(True)
        code = int(np.flatnonzero(np.asarray(estimator.classes_) == target)[0])
        attribution = LayerGradCam(network, cam_layer(network, x)).attribute(
            x, target=code, relu_attributions=True
        )
        upsampled = LayerAttribution.interpolate(attribution, x.shape[-2:], "bilinear")
        maps.append(upsampled[0, 0].detach().cpu().numpy())
    heat = np.mean(maps, axis=0)
    heat = heat / heat.max() if heat.max() > 0 else heat
    return np.ascontiguousarray(view), heat, heat >= SUPPORT
