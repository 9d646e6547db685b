"""Grading photos with a network: batches of 64 plain views, the mean over the flips
(test-time augmentation), and what the last layer reads of each photo (the penultimate
features, for the familiarity model and for adapting)."""

from __future__ import annotations

from typing import Any

import torch

from ..features.transforms import eval_batch
from .cnn_training import CHANNELS_LAST


def last_linear(network: torch.nn.Module) -> torch.nn.Linear:
    """The network's last layer (a Linear), whose input is the penultimate features."""
    return [m for m in network.modules() if isinstance(m, torch.nn.Linear)][-1]


def log_probabilities(
    network: torch.nn.Module,
    photos: torch.Tensor,
    device: Any,
    size: int,
    tta: bool,
    n_classes: int,
    features: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Log-probabilities of ``photos`` at ``size`` (of the mean over the flips, with
    ``tta``). ``features``, when given, receives what the last layer reads of each
    batch's unflipped view."""
    network.eval()
    out = []
    views = ((), (3,), (2,), (2, 3)) if tta else ((),)
    seen: list[torch.Tensor] = []
    hook = None
    if features is not None:
        last = last_linear(network)
        hook = last.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    try:
        with torch.inference_mode():
            for i in range(0, len(photos), 64):
                x = eval_batch(photos[i : i + 64], size)
                x = x.to(device, memory_format=CHANNELS_LAST)
                proba = sum(torch.softmax(network(x.flip(v) if v else x), 1) for v in views)
                out.append(torch.log(proba / len(views)).cpu())
                if features is not None:
                    features.append(seen[0].reshape(len(x), -1).double().cpu())
                    seen.clear()
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(out) if out else torch.zeros(0, n_classes)
