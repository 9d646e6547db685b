"""Flip / rotate expansion of a training set; every copy stays tied to its source photo."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..basics.errors import SettingsError
from .pixels import check_images

Op = Callable[[np.ndarray], np.ndarray]


def _rot(k: int, flip: bool) -> Op:
    def op(images: np.ndarray) -> np.ndarray:
        if flip:
            images = images[:, :, ::-1]
        return np.rot90(images, k, axes=(1, 2)) if k else images

    return op


EXPANSIONS: dict[str, list[Op]] = {
    "none": [_rot(0, False)],
    "flip": [_rot(0, False), _rot(0, True)],
    "rotate": [_rot(k, False) for k in range(4)],
    "flip-rotate": [_rot(k, flip) for flip in (False, True) for k in range(4)],
}


def _ops_for(shape: tuple[int, ...], mode: str) -> list[Op]:
    """The operations of ``mode`` for photos of ``shape`` (height, width, ...)."""
    ops = expansion_ops(mode)
    if len(ops) > 2 and shape[0] != shape[1]:
        raise SettingsError(f"Rotating needs square photos; these are {shape[0]} x {shape[1]}.")
    return ops


def expansion_ops(mode: str) -> list[Op]:
    """The copies a mode makes: x1 none, x2 horizontal flip, x4 rotations, x8 both."""
    if mode not in EXPANSIONS:
        raise SettingsError(
            f"Unknown expansion {mode!r}. Valid expansions: {', '.join(EXPANSIONS)}."
        )
    return EXPANSIONS[mode]


def expand_images(images: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Expanded photos and, for each copy, the index of its source photo.

    Copies are ordered by operation: rows ``k * n ... (k + 1) * n`` are operation ``k``
    applied to every photo, so ``source = tile(arange(n), n_ops)``.
    """
    images = check_images(images)
    ops = _ops_for(images.shape[1:], mode)
    expanded = np.concatenate([op(images) for op in ops])
    return expanded, np.tile(np.arange(len(images)), len(ops))


def expand_features(
    images: np.ndarray,
    mode: str,
    transform: Callable[[np.ndarray], np.ndarray],
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """``transform`` of every expanded copy, written into one preallocated array.

    The expanded photos are never held all at once, so ``rf-study`` on 6,400 photos
    (51,200 x 49,152 float32, 10 GB) needs about one copy of that matrix, not two.
    """
    images = check_images(images)
    ops = _ops_for(images.shape[1:], mode)
    n = len(images)
    first = transform(ops[0](images[:chunk]))
    out = np.empty((n * len(ops), first.shape[1]), dtype=first.dtype)
    for k, op in enumerate(ops):
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            done = first if (k, start) == (0, 0) else transform(op(images[start:stop]))
            out[k * n + start : k * n + stop] = done
    return out, np.tile(np.arange(n), len(ops))


def pixel_permutations(shape: tuple[int, int, int], mode: str) -> np.ndarray:
    """For pixel vectors of photos of ``shape``, the feature permutation of each copy.

    Copy ``k`` of a photo's vector ``v`` is ``v[perms[k]]``: what a model that accepts
    permutations (the forest) needs instead of the expanded photos themselves.
    """
    ops = _ops_for(shape, mode)
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(1, *shape)
    return np.stack([op(index).reshape(-1) for op in ops])
