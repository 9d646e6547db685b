"""CNN input transforms: the study's train and eval presets, on uint8 tensors.

``train_transforms`` / ``eval_transforms`` are the study's lists as
``torchvision.transforms.v2`` pipelines, one photo ``(3, H, W)`` at a time.
``BatchAugment`` draws the same random operations for a whole uint8 batch ``(N, 3, R, R)``
and applies them as one resampling: crop, flips, rotation and perspective become one
3 x 3 matrix per photo, so a batch costs one ``grid_sample`` instead of four per photo
(about 10x faster, which keeps augmentation a small part of a training step on a CPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..images.geometry import resize_for

# The study's normalisation (its own numbers: note 0.256, not ImageNet's 0.224).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.256, 0.225)
ROTATION = 30.0
PERSPECTIVE = 0.5  # torchvision's default distortion, applied to half the photos
JITTER = (0.8, 1.2)


def _v2():  # torchvision takes seconds to import; grading and BatchAugment need only torch
    from torchvision.transforms import v2

    return v2


def _to_float() -> list[Any]:
    v2 = _v2()
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]


def eval_transforms(size: int = 224) -> Any:
    """Resize, centre-crop ``size``, normalise: deterministic (a ``v2.Compose``)."""
    v2 = _v2()
    resize = v2.Resize((resize_for(size), resize_for(size)), antialias=True)
    return v2.Compose([resize, v2.CenterCrop(size), *_to_float()])


def train_transforms(size: int = 224) -> Any:
    """The study's augmentation: crop, both flips, rotation up to 30 degrees, random
    perspective, brightness / contrast / saturation jitter 0.8-1.2, normalise."""
    v2 = _v2()
    return v2.Compose(
        [
            v2.Resize((resize_for(size), resize_for(size)), antialias=True),
            v2.CenterCrop(size),
            v2.RandomVerticalFlip(),
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(ROTATION),
            v2.RandomPerspective(PERSPECTIVE),
            v2.ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER),
            *_to_float(),
        ]
    )


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """In place: ``(x - mean) / std`` per channel."""
    mean = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` to the resize of ``size`` (a no-op when already there)."""
    side = resize_for(size)
    if images.shape[-2:] == (side, side):
        return images
    resized = F.interpolate(
        images.float(), (side, side), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def eval_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """``eval_transforms`` for a uint8 batch at the resize of ``size``: float, normalised."""
    return _normalise(crop_batch(images, size).float().div_(255))


def crop_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """The uint8 centre crop a CNN of input ``size`` sees: resize, then crop."""
    images = resize_batch(images, size)
    side = images.shape[-1]
    top = int(round((side - size) / 2.0))
    return images[..., top : top + size, top : top + size]


def _homographies(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` matrices mapping each ``target`` quad ``(N, 4, 2)`` onto ``source``."""
    n = source.shape[0]
    rows = torch.zeros(n, 8, 8, dtype=torch.float64)
    rhs = torch.zeros(n, 8, dtype=torch.float64)
    for i in range(4):
        x, y = target[:, i, 0], target[:, i, 1]
        u, v = source[:, i, 0], source[:, i, 1]
        one, zero = torch.ones_like(x), torch.zeros_like(x)
        rows[:, 2 * i] = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], 1)
        rows[:, 2 * i + 1] = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], 1)
        rhs[:, 2 * i], rhs[:, 2 * i + 1] = u, v
    h = torch.linalg.solve(rows, rhs)
    return torch.cat([h, torch.ones(n, 1, dtype=torch.float64)], 1).view(n, 3, 3)


class BatchAugment:
    """The study's train augmentation for a whole uint8 batch, drawn per photo.

    Same operations and ranges as :func:`train_transforms` (flips p = 0.5, rotation
    uniform in +-30 degrees, perspective p = 0.5 with distortion 0.5, then brightness,
    contrast and saturation each by a factor in 0.8-1.2), sampled bilinearly once. The
    colour changes come in that fixed order (torchvision shuffles it per photo).
    """

    def __init__(
        self, size: int, generator: torch.Generator | None = None, colour: bool = True
    ) -> None:
        self.size = size
        self.generator = generator
        self.colour = colour  # False: flips, rotation and perspective only

    def _uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        r = torch.rand(*shape, generator=self.generator, dtype=torch.float64)
        return low + (high - low) * r

    def matrices(self, n: int, side: int) -> torch.Tensor:
        """``(N, 3, 3)``: output pixel (x, y, 1) -> source pixel in the resized photo."""
        s = self.size
        c = (s - 1) / 2.0
        corners = torch.tensor(
            [[0, 0], [s - 1, 0], [s - 1, s - 1], [0, s - 1]], dtype=torch.float64
        )
        # Perspective: each corner moves inwards by up to half the distortion x half side.
        inward = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=torch.float64)
        shift = self._uniform(n, 4, 2, high=PERSPECTIVE * (s // 2))
        skewed = self._uniform(n) < 0.5
        moved = corners + inward * shift * skewed.view(n, 1, 1)
        perspective = _homographies(corners.expand(n, 4, 2), moved)
        angle = self._uniform(n, low=-ROTATION, high=ROTATION) * math.pi / 180
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.zeros(n, 3, 3, dtype=torch.float64)
        rotation[:, 0, 0], rotation[:, 0, 1] = cos, -sin
        rotation[:, 1, 0], rotation[:, 1, 1] = sin, cos
        rotation[:, 0, 2] = c - cos * c + sin * c
        rotation[:, 1, 2] = c - sin * c - cos * c
        rotation[:, 2, 2] = 1
        flip = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        for axis, p in ((0, self._uniform(n) < 0.5), (1, self._uniform(n) < 0.5)):
            flip[p, axis, axis] = -1
            flip[p, axis, 2] = s - 1
        crop = torch.eye(3, dtype=torch.float64)
        crop[0, 2] = crop[1, 2] = float(round((side - s) / 2.0))
        return crop @ flip @ rotation @ perspective

    def __call__(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(N, 3, R, R)`` -> augmented, normalised float ``(N, 3, size, size)``.

        With ``keep`` (positions), draws for all N photos but makes only those: each
        process of a distributed run augments its share exactly as one process would.
        """
        drawn = images.shape[0]
        images = resize_batch(images if keep is None else images[keep], self.size)
        n, side, s = images.shape[0], images.shape[-1], self.size
        # Fold pixel -> grid_sample's [-1, 1] coordinates into the matrices.
        to_unit = torch.tensor(
            [[2 / side, 0, 1 / side - 1], [0, 2 / side, 1 / side - 1], [0, 0, 1]]
        )
        m = (to_unit.double() @ self.matrices(drawn, side)).float()
        if keep is not None:
            m = m[keep]
        ys, xs = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        xs, ys = xs.reshape(1, 1, -1).float(), ys.reshape(1, 1, -1).float()
        mapped = m[:, :, 0:1] * xs + m[:, :, 1:2] * ys + m[:, :, 2:3]  # (N, 3, s * s)
        grid = (mapped[:, :2] / mapped[:, 2:]).transpose(1, 2).reshape(n, s, s, 2)
        # Like torchvision, corners rotated in from outside the crop are black, not margin.
        offset = round((side - s) / 2.0)
        low, high = 2 * offset / side - 1, 2 * (offset + s) / side - 1
        grid[((grid < low) | (grid > high)).any(-1)] = 2.0  # beyond the photo: zeros
        x = F.grid_sample(images.float().div_(255), grid, "bilinear", "zeros", align_corners=False)
        return _normalise(self.jitter(x, keep, drawn))

    def jitter(
        self, x: torch.Tensor, keep: torch.Tensor | None = None, drawn: int | None = None
    ) -> torch.Tensor:
        """Brightness, contrast, saturation, in place on float ``x`` in [0, 1] (drawn for
        ``drawn`` photos, of which ``x`` holds those at ``keep``)."""
        n = x.shape[0]
        if not self.colour:  # colour is the grade signal: kept as photographed
            return x
        factors = [self._uniform(drawn or n, low=JITTER[0], high=JITTER[1]) for _ in range(3)]
        b, c, s = (f.float() if keep is None else f[keep].float() for f in factors)
        weights = torch.tensor([0.2989, 0.587, 0.114])
        x.mul_(b.view(n, 1, 1, 1)).clamp_(0, 1)
        mean = (x.mean(dim=(2, 3)) @ weights).view(n, 1, 1, 1)
        x.mul_(c.view(n, 1, 1, 1)).add_(mean * (1 - c.view(n, 1, 1, 1))).clamp_(0, 1)
        gray = torch.einsum("nchw,c->nhw", x, weights).unsqueeze(1)
        return x.mul_(s.view(n, 1, 1, 1)).add_(gray * (1 - s.view(n, 1, 1, 1))).clamp_(0, 1)
