"""Photos that are not independent: exact copies, near-duplicates and bursts.

A set of photos taken in bursts (the same fruit shot several times within seconds) or
holding near-duplicates (the same shot saved twice, resized or re-encoded) inflates any
score that splits it by photo: one shot is trained on, its twin is held out. With no
fruit groups given, these find such photos so that ``train`` can warn, and
``--groups auto`` can keep each set in one group.

* near-duplicates: a 256-bit difference hash (dHash) of each decoded photo, and pairs at
  most :data:`NEAR_SHARE` of the bits apart;
* bursts: photos of the same label whose EXIF time (``DateTimeOriginal``, else
  ``DateTime``) is within :data:`BURST_SECONDS` of the previous one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

HASH_SIDE = 16  # 256 bits: 64 cannot tell apart one orchard's mangoes on one background
NEAR_SHARE = 0.05  # of the bits: on mango-grading, no two fruits within 0.06 (views of
# one fruit differ by 0.06 to 0.3); a re-saved or resized shot differs by a few bits
BURST_SECONDS = 10.0
_EXIF_IFD, _ORIGINAL, _DATETIME = 0x8769, 0x9003, 0x0132


def identical_photos(images: np.ndarray) -> list[list[int]]:
    """Sets of photos whose decoded pixels are identical, each in photo order."""
    by_content: dict[bytes, list[int]] = {}
    for i, image in enumerate(images):
        by_content.setdefault(hashlib.blake2b(image.tobytes()).digest(), []).append(i)
    return [same for same in by_content.values() if len(same) > 1]


def dhash(images: np.ndarray, side: int = HASH_SIDE) -> np.ndarray:
    """Each photo's difference hash, ``side * side`` bits as ``(n, side * side // 64)``
    uint64 words: its grey image at ``side + 1`` x ``side``, one bit for each pixel
    brighter than its right-hand neighbour."""
    bits = np.zeros((len(images), side * side), dtype=bool)
    for i, image in enumerate(images):
        grey = Image.fromarray(np.ascontiguousarray(image)).convert("L")
        small = np.asarray(grey.resize((side + 1, side), Image.Resampling.BILINEAR), np.int16)
        bits[i] = (small[:, :-1] > small[:, 1:]).reshape(-1)
    return np.packbits(bits, axis=1).view(np.uint64)


def near_duplicates(images: np.ndarray, max_share: float = NEAR_SHARE) -> list[list[int]]:
    """Sets of photos linked by hashes at most ``max_share`` of their bits apart (chains
    join)."""
    hashes = dhash(images)
    limit = max_share * hashes.shape[1] * 64
    pairs = []
    for start in range(0, len(hashes), 256):  # rows of the distance matrix, bounded memory
        block = hashes[start : start + 256, None, :] ^ hashes[None, :, :]
        rows, cols = np.nonzero(np.bitwise_count(block).sum(axis=-1) <= limit)
        rows = rows + start
        keep = rows < cols
        pairs += list(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    return _linked(len(hashes), pairs)


def taken_at(paths: Sequence[str | Path]) -> list[float | None]:
    """Each photo's EXIF time in seconds (None where the photo does not say)."""
    times: list[float | None] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                exif = image.getexif()
                text = exif.get_ifd(_EXIF_IFD).get(_ORIGINAL) or exif.get(_DATETIME)
            moment = datetime.strptime(str(text).strip("\0 "), "%Y:%m:%d %H:%M:%S")
            times.append(moment.timestamp())
        except (OSError, ValueError, TypeError):
            times.append(None)
    return times


def bursts(
    times: Sequence[float | None], labels: Sequence[int], seconds: float = BURST_SECONDS
) -> list[list[int]]:
    """Sets of photos of one label each taken within ``seconds`` of the one before."""
    pairs = []
    for label in set(labels):
        timed = sorted(
            (t, i) for i, (t, lab) in enumerate(zip(times, labels, strict=True))
            if t is not None and lab == label
        )  # fmt: skip
        pairs += [(a, b) for (s, a), (t, b) in pairwise(timed) if t - s <= seconds]
    return _linked(len(times), pairs)


def _linked(n: int, pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The sets (of two or more) that ``pairs`` join, each in index order."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    sets: dict[int, list[int]] = {}
    for i in range(n):
        sets.setdefault(root(i), []).append(i)
    return [members for members in sets.values() if len(members) > 1]
