"""The parts of ``CNNClassifier``'s training loop that need no estimator: the device, the
optimiser with its parameter groups, the learning-rate schedule, the augmentation, this
process's share of a batch under torchrun, and the weights' moving average."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..basics.errors import SettingsError
from ..features.transforms import BatchAugment, eval_batch, train_transforms
from . import ddp

CHANNELS_LAST = torch.channels_last  # about 25% faster convolutions on a CPU


def pick_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise SettingsError(f"Unknown device {device!r}: use auto, cpu, cuda or mps.") from None


def copy_state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


@torch.no_grad()
def average_into(average: torch.nn.Module, network: torch.nn.Module, decay: float) -> None:
    """One step of the weights' moving average; BatchNorm's running statistics too."""
    for mine, theirs in zip(
        average.state_dict().values(), network.state_dict().values(), strict=True
    ):
        if mine.is_floating_point():
            mine.mul_(decay).add_(theirs, alpha=1 - decay)
        else:
            mine.copy_(theirs)


def make_optimizer(
    network: torch.nn.Module,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    body_lr: float,
) -> torch.optim.Optimizer:
    """``optimizer`` over the network; ``network.features`` at ``body_lr`` x the rate
    (its group's ``lr_scale``) when that is not 1."""
    params: Any = network.parameters()
    body = getattr(network, "features", None)
    if body_lr != 1.0 and body is not None:
        mine = {id(p) for p in body.parameters()}
        params = [
            {"params": list(body.parameters()), "lr_scale": body_lr},
            {"params": [p for p in network.parameters() if id(p) not in mine]},
        ]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_at(
    epoch: float,
    lr: float,
    schedule: str,
    warmup_epochs: int,
    epochs: int,
    step_size: int,
    step_gamma: float,
) -> float:
    """Learning rate at a fractional epoch: the peak ``lr`` x ``step_gamma`` every
    ``step_size`` epochs (``step``), or after ``warmup_epochs`` of linear warm-up, constant
    or a cosine decay to the last epoch."""
    if schedule == "step":
        return lr * step_gamma ** int(epoch // max(1, step_size))
    if epoch < warmup_epochs:
        return lr * (epoch + 1e-3) / warmup_epochs
    if schedule == "constant":
        return lr
    span = max(1e-9, epochs - warmup_epochs)
    return float(0.5 * lr * (1 + np.cos(np.pi * (epoch - warmup_epochs) / span)))


def augmenter(augment: str, size: int, generator: torch.Generator) -> Any:
    """The training augmentation ``augment`` of photos at ``size``, drawn from ``generator``."""
    if augment in ("batch", "geometric"):
        return BatchAugment(size, generator, colour=augment == "batch")
    if augment == "none":
        return lambda photos: eval_batch(photos, size)
    per_photo = train_transforms(size)

    def each(photos: torch.Tensor) -> torch.Tensor:
        # torchvision draws from the global generator: seed it from ours.
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return torch.stack([per_photo(p) for p in photos])

    return each


def share(
    augment: Any, photos: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's share of a global batch, augmented as one process would."""
    if ddp.world()[1] == 1:
        return augment(photos), labels
    mine = ddp.my_share(torch.arange(len(photos)))
    if isinstance(augment, BatchAugment):
        return augment(photos, mine), labels[mine]
    return augment(photos)[mine], labels[mine]
