"""Adapting a fitted network to other photos (another camera or orchard): BatchNorm's
statistics measured again, then the last step trained alone on the penultimate features."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..basics.progress import Bar
from ..features.transforms import eval_batch
from .cnn_grading import last_linear
from .cnn_training import CHANNELS_LAST


def last_step(network: torch.nn.Module) -> torch.nn.Module:
    """What reads the penultimate features: the ordinal head, or the last linear layer."""
    return next((m for m in network.modules() if getattr(m, "reads_features", False)),
                None) or last_linear(network)  # fmt: skip


def reestimate_batchnorm(network: torch.nn.Module, photos: torch.Tensor, size: int) -> None:
    """Every BatchNorm layer's running mean and variance, measured again on ``photos``
    (their plain views, as graded) and nothing else learnt."""
    layers = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers or len(photos) < 2:
        return
    device = next(network.parameters()).device
    momenta = [m.momentum for m in layers]
    network.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative mean over every batch
        layer.train()
    with torch.no_grad():
        for i in range(0, len(photos), 64):
            batch = photos[i : i + 64]
            if len(batch) < 2:
                continue
            network(eval_batch(batch, size).to(device, memory_format=CHANNELS_LAST))
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    network.eval()


def fit_last_step(
    final: torch.nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    lr: float,
    *,
    weight_decay: float,
    label_smoothing: float,
    batch_size: int,
    seed: int,
    progress: bool | None,
) -> None:
    """Train ``final`` (the network's last step) on penultimate ``features`` with AdamW,
    ``epochs`` passes in seeded batches of ``batch_size`` (at least 2)."""
    optimizer = torch.optim.AdamW(final.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    size = max(2, min(batch_size, len(features)))
    final.train()
    with Bar(epochs, "Adapting the last layer", progress, every=max(1, epochs // 4)) as bar:
        for _ in range(epochs):
            for batch in torch.randperm(len(features), generator=generator).split(size):
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(final(features[batch]), labels[batch],
                                       label_smoothing=label_smoothing)  # fmt: skip
                loss.backward()
                optimizer.step()
            bar.advance(1)
    final.eval()
