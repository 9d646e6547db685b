"""CNN architectures, built by registered name (training lives in cnn_estimator.py).

``study-cnn`` is the study's table, with the options its ablations varied. ``fast-cnn``
is designed for a 2-core CPU: two stride-2 convolutions shrink a 128 px photo to 32 px
before any wide layer, then residual blocks and global pooling; about 1/12 of
``study-cnn``'s multiply-adds at the same size.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..basics.errors import SettingsError
from .pretrained import PretrainedNet

ORDERS = ("act-bn", "bn-act")
ACTIVATIONS = ("relu", "leaky_relu", "prelu")
POOLINGS = ("max", "conv")
STUDY_CHANNELS = (32, 64, 128, 256, 512)
STUDY_DENSE = (512, 256, 64)


def make_activation(name: str, channels: int) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "prelu":
        return nn.PReLU(channels)
    raise SettingsError(f"Unknown activation {name!r}. Valid: {', '.join(ACTIVATIONS)}.")


def _act_norm(order: str, act: str, channels: int, norm: type[nn.Module]) -> list[nn.Module]:
    """Activation and BatchNorm in the chosen order (the study: activation first)."""
    if order not in ORDERS:
        raise SettingsError(f"Unknown order {order!r}. Valid: {', '.join(ORDERS)}.")
    pair = [make_activation(act, channels), norm(channels)]
    return pair if order == "act-bn" else pair[::-1]


def _check_size(size: int, stride: int) -> None:
    if stride < 1:
        raise SettingsError(f"Strides must be at least 1, got a total stride of {stride}.")
    if size < stride or size % stride:
        raise SettingsError(
            f"The input size must be a positive multiple of {stride} for this network, "
            f"got {size}. Try {max(stride, round(size / stride) * stride)}."
        )


class StudyCNN(nn.Module):
    """Five blocks of [conv 3x3 -> activation -> BatchNorm] x 2 then pooling; dense head.

    Input ``(N, 3, size, size)``; output ``(N, n_classes)`` logits. ``dense_layers``
    keeps the first layers of 512 -> 256 -> 64 (dropout after all but the last).
    """

    def __init__(
        self,
        n_classes: int = 3,
        size: int = 224,
        order: str = "act-bn",
        activation: str = "prelu",
        pooling: str = "max",
        dropout: float = 0.5,
        dense_layers: int = 3,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        _check_size(size, 32 * stem_stride)
        if pooling not in POOLINGS:
            raise SettingsError(f"Unknown pooling {pooling!r}. Valid: {', '.join(POOLINGS)}.")
        if not 0 <= dense_layers <= len(STUDY_DENSE):
            raise SettingsError(f"dense_layers must be 0 to 3, got {dense_layers}.")
        if not 0.0 <= dropout < 1.0:
            raise SettingsError(f"dropout must be in [0, 1), got {dropout}.")
        layers: list[nn.Module] = []
        c_in = 3
        for c in STUDY_CHANNELS:
            for first in (True, False):
                stride = stem_stride if first and c_in == 3 else 1
                layers.append(nn.Conv2d(c_in if first else c, c, 3, stride, 1))
                layers += _act_norm(order, activation, c, nn.BatchNorm2d)
            layers.append(nn.MaxPool2d(2) if pooling == "max" else nn.Conv2d(c, c, 3, 2, 1))
            c_in = c
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        width = STUDY_CHANNELS[-1] * (size // (32 * stem_stride)) ** 2
        for i, units in enumerate(STUDY_DENSE[:dense_layers]):
            head.append(nn.Linear(width, units))
            head += _act_norm(order, activation, units, nn.BatchNorm1d)
            if i < dense_layers - 1 and dropout > 0:
                head.append(nn.Dropout(dropout))
            width = units
        head.append(nn.Linear(width, n_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Residual(nn.Module):
    """Two 3x3 convs with a shortcut (1x1 stride-2 conv where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            make_activation(act, c_out),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.out = make_activation(act, c_out)
        # Each block starts as (nearly) the identity: steadier early training (Goyal 2017).
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class FastCNN(nn.Module):
    """A small residual net for CPUs: stride 4 in the stem, then 32-64-128-256 channels.

    Average and max pooling are concatenated before the classifier: a blemish is a
    small, strong local response that averaging alone would dilute.
    """

    def __init__(
        self,
        n_classes: int = 3,
        size: int = 128,
        activation: str = "relu",
        dropout: float = 0.2,
        width: int = 32,
    ) -> None:
        super().__init__()
        _check_size(size, 32)
        act, w = activation, width
        self.features = nn.Sequential(
            nn.Conv2d(3, w // 2, 3, 2, 1, bias=False),
            nn.BatchNorm2d(w // 2),
            make_activation(act, w // 2),
            nn.Conv2d(w // 2, w, 3, 1, 1, bias=False),
            nn.BatchNorm2d(w),
            make_activation(act, w),
            nn.MaxPool2d(2),
            _Residual(w, w, 1, act),
            _Residual(w, 2 * w, 2, act),
            _Residual(2 * w, 4 * w, 2, act),
            _Residual(4 * w, 8 * w, 2, act),
        )
        # BatchNorm on the pooled features keeps the classifier's steps small: max-pooled
        # values are large, and without it SGD at the study's rate diverges early.
        self.head = nn.Sequential(
            nn.BatchNorm1d(16 * w), nn.Dropout(dropout), nn.Linear(16 * w, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "study-cnn": StudyCNN,
    "fast-cnn": FastCNN,
    "pretrained": PretrainedNet,  # an ImageNet backbone and a new head (the transfer family)
}


def build_network(name: str, n_classes: int, size: int, **options: Any) -> nn.Module:
    """The network ``name`` for ``n_classes`` grades at ``size`` px; options it does not
    take (another architecture's) are ignored."""
    if name not in ARCHITECTURES:
        raise SettingsError(
            f"Unknown architecture {name!r}. Valid: {', '.join(sorted(ARCHITECTURES))}."
        )
    builder = ARCHITECTURES[name]
    accepted = inspect.signature(builder).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    return builder(n_classes=n_classes, size=size, **kwargs)


def multiply_adds(network: nn.Module, size: int) -> int:
    """Multiply-adds of one forward pass on a ``size`` x ``size`` photo (convs + linears)."""
    total = 0

    def count(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            total += output.numel() * kernel // module.groups
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in network.modules()]
    was_training = network.training
    network.eval()
    with torch.no_grad():
        network(torch.zeros(1, 3, size, size, device=next(network.parameters()).device))
    network.train(was_training)
    for hook in hooks:
        hook.remove()
    return total


HEADS = ("softmax", "cumulative")


class CumulativeLink(nn.Module):
    """An ordinal head: one score ``s`` a photo and ordered thresholds ``t_0 < t_1 < ...``,
    P(grade <= k) = sigmoid(t_k - s) (grades best-first, the proportional-odds model).
    Returns log-probabilities of the grades, so softmax, cross-entropy (its likelihood)
    and the export treat them as logits."""

    reads_features = True  # the network's last step: its input is the penultimate features

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise SettingsError("An ordinal head needs at least two grades.")
        self.score = nn.Linear(in_features, 1)
        self.first = nn.Parameter(torch.tensor(-1.0))
        # softplus(gap) = 2 / (k - 2): thresholds start evenly spread over [-1, 1]
        spread = 2.0 / max(1, n_classes - 2)
        self.gaps = nn.Parameter(torch.full((n_classes - 2,), float(np.log(np.expm1(spread)))))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        steps = torch.nn.functional.softplus(self.gaps)
        thresholds = torch.cat([self.first.view(1), self.first + torch.cumsum(steps, 0)])
        below = torch.sigmoid(thresholds - self.score(features))  # (N, K-1), increasing
        ones = torch.ones_like(below[:, :1])
        cumulative = torch.cat([torch.zeros_like(ones), below, ones], dim=1)
        return torch.log((cumulative[:, 1:] - cumulative[:, :-1]).clamp_min(1e-8))


def with_head(network: nn.Module, head: str, n_classes: int) -> nn.Module:
    """``network`` with its last linear layer replaced by ``head`` (softmax: as built)."""
    if head not in HEADS:
        raise SettingsError(f"Unknown head {head!r}. Valid: {', '.join(HEADS)}.")
    if head == "softmax":
        return network
    name, last = [(n, m) for n, m in network.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = network.get_submodule(name.rpartition(".")[0]) if "." in name else network
    setattr(parent, name.rpartition(".")[2], CumulativeLink(last.in_features, n_classes))
    return network
