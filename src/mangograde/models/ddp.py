"""Training one CNN on several processes launched by ``torchrun`` (DistributedDataParallel).

Every process holds the whole run (photos, settings, seed) and draws the same shuffle and
augmentation from the run's seeded generator; each takes its share of every global batch,
the way ``DistributedSampler`` interleaves (rank r takes positions r, r + W, ...). Gradients
are averaged by DDP, and BatchNorm statistics are those of the whole global batch
(:func:`global_batchnorm`), so N processes with batches of B/N learn what one process learns
with batches of B, up to float rounding.

torch's ``SyncBatchNorm`` refuses CPU tensors, so it cannot serve gloo; the same sums go
through a differentiable all-reduce here, on any device and backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..basics.errors import SettingsError


def world() -> tuple[int, int]:
    """(rank, number of processes): (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched() -> bool:
    """Started by torchrun (or another launcher that sets ``WORLD_SIZE``) with 2+ processes."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise SettingsError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes."
        ) from None


@contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """Join torchrun's process group for the duration (gloo on CPU, nccl with CUDA); a
    no-op in a plain process or when the caller already joined one."""
    if not launched() or world()[1] > 1:
        yield world()
        return
    if not dist.is_available():
        raise SettingsError("This torch build has no torch.distributed: run without torchrun.")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def share_object(value: Any, source: int = 0) -> Any:
    """``value`` as process ``source`` has it, in every process."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def my_share(batch: torch.Tensor) -> torch.Tensor:
    """This process's positions of a global batch (DistributedSampler's interleaving)."""
    rank, size = world()
    return batch[rank::size]


def sum_over_processes(values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over the processes."""
    if world()[1] == 1:
        return values
    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce whose backward sums the gradients over the processes too."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _global_forward(norm: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm in training mode with the mean and variance of the global batch."""
    dims = [d for d in range(x.dim()) if d != 1]
    count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
    sums = _SumOverProcesses.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
    c, n = x.shape[1], sums[-1]
    mean = sums[:c] / n
    var = sums[c : 2 * c] / n - mean * mean
    if norm.track_running_stats and norm.running_mean is not None:
        assert norm.running_var is not None and norm.num_batches_tracked is not None
        with torch.no_grad():
            m = norm.momentum if norm.momentum is not None else 0.1
            norm.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            unbiased = var.detach() * n / (n - 1).clamp(min=1)
            norm.running_var.mul_(1 - m).add_(unbiased, alpha=m)
            norm.num_batches_tracked.add_(1)
    shape = [1] * x.dim()
    shape[1] = c
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + norm.eps)
    if norm.affine:
        y = y * norm.weight.view(shape) + norm.bias.view(shape)
    return y


class GlobalBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and world()[1] > 1:
            return _global_forward(self, x)
        return super().forward(x)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and world()[1] > 1:
            return _global_forward(self, x)
        return super().forward(x)


_GLOBAL = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d}


def global_batchnorm(network: nn.Module) -> nn.Module:
    """``network`` with every BatchNorm computing global-batch statistics (in place: the
    same parameters and buffers, only the forward changes)."""
    for module in network.modules():
        if type(module) in _GLOBAL:
            module.__class__ = _GLOBAL[type(module)]
    return network


def data_parallel(network: nn.Module) -> nn.Module:
    """``network`` wrapped for the running process group (itself in a plain process)."""
    if world()[1] == 1:
        return network
    from torch.nn.parallel import DistributedDataParallel

    global_batchnorm(network)
    device = next(network.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(network, device_ids=ids)


def plain(network: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper."""
    return getattr(network, "module", network)


def share_loss(logits: torch.Tensor, targets: torch.Tensor, batch: int, smoothing: float):
    """The loss whose DDP-averaged gradient is that of the mean over the global batch of
    ``batch`` photos (shares may differ by one photo)."""
    total = F.cross_entropy(logits, targets, label_smoothing=smoothing, reduction="sum")
    return total * (world()[1] / batch)
