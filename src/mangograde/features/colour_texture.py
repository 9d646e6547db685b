"""The colour, blemish and texture measurements of :class:`~.colour.ColourTexture`, as
plain functions of uint8 photos: numpy, Pillow and scipy's ``ndimage`` only, so that an
export grades with the very code its run was trained with (no scikit-learn)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from .arrays import check_images

# sRGB 0-255 to linear light, as a lookup table
_V = np.arange(256) / 255
_LINEAR = np.where(_V > 0.04045, ((_V + 0.055) / 1.055) ** 2.4, _V / 12.92).astype(np.float32)
# linear RGB to XYZ (D65), each row divided by the white point
_XYZ = (
    np.array(
        [
            [0.412453, 0.357580, 0.180423],
            [0.212671, 0.715160, 0.072169],
            [0.019334, 0.119193, 0.950227],
        ]
    )  # fmt: skip
    / np.array([[0.950456], [1.0], [1.088754]])
).astype(np.float32)
# the Lab companding function f(t) on a fine grid of t in [0, 1.2]
_F_STEPS = 8192
_T = np.linspace(0, 1.2, _F_STEPS + 1)
_F = np.where(_T > 0.008856, np.cbrt(_T), 7.787 * _T + 16 / 116).astype(np.float32)

# in-plane neighbourhoods, so that a stack of photos is processed photo by photo
_CROSS = np.zeros((3, 3, 3), bool)
_CROSS[1] = ndimage.generate_binary_structure(2, 1)

# edges for "how much darker (or lighter) than the neighbourhood", in Lab units
_LOCAL_EDGES = np.array([2, 4, 6, 8, 12, 16, 24, 32])


def _lab(images: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of uint8 sRGB ``(..., 3)``, float32."""
    xyz = _LINEAR[images] @ _XYZ.T
    f = _F[np.clip(xyz * (_F_STEPS / 1.2), 0, _F_STEPS).astype(np.int32)]
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], -1)


def _hue_sat(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (0-1), saturation and value (0-1) of uint8 RGB ``(..., 3)``, float32."""
    r, g, b = (images[..., k].astype(np.float32) for k in range(3))
    mx = np.maximum(np.maximum(r, g), b)
    delta = mx - np.minimum(np.minimum(r, g), b)
    safe = np.maximum(delta, 1.0)
    hue = np.where(
        mx == r, (g - b) / safe, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = np.where(delta > 0, (hue / 6.0) % 1.0, 0.0).astype(np.float32)
    return hue, delta / np.maximum(mx, 1.0), mx / 255.0


def _fruit_masks(sat: np.ndarray, val: np.ndarray, threshold: float) -> np.ndarray:
    """Per photo: saturated or dark pixels, largest blob, holes filled, edge eroded a little."""
    n, h, w = sat.shape
    mask = _dilate(_erode((sat > threshold) | (val < 0.25), 5), 5)  # opening
    labels, count = ndimage.label(mask, _CROSS)
    if count:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        # largest blob of each photo: the photo's label with the most pixels
        blob = sizes[labels]
        mask = blob == blob.reshape(n, -1).max(1)[:, None, None]
        mask &= labels > 0
    # pad with empty photos so that the stack's first and last photos are not "border"
    padded = np.pad(mask, ((1, 1), (0, 0), (0, 0)))
    mask = ndimage.binary_fill_holes(padded, _CROSS)[1:-1]
    mask = _erode(mask, 7)
    # no fruit found: fall back on a centre disc
    yy, xx = np.ogrid[:h, :w]
    disc = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2 < 1
    empty = mask.reshape(n, -1).sum(1) < 0.02 * h * w
    mask[empty] = disc
    return mask


def _erode(mask: np.ndarray, width: int) -> np.ndarray:
    """Binary erosion of each photo by a ``width`` square (a box filter: fast)."""
    box = ndimage.uniform_filter(mask.astype(np.float32), (1, width, width), mode="constant")
    return box > 1 - 0.5 / width**2


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    box = ndimage.uniform_filter(mask.astype(np.float32), (1, width, width), mode="constant")
    return box > 0.5 / width**2


def _lbp(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP codes (8 neighbours, radius 1), 0-9, of ``(n, H, W)``."""
    c = gray[:, 1:-1, 1:-1]
    _, h, w = gray.shape
    offsets = [(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)]
    bits = [gray[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= c for dy, dx in offsets]
    ones = sum(b.astype(np.uint8) for b in bits)
    transitions = sum((bits[k] != bits[k - 1]).astype(np.uint8) for k in range(8))
    codes = np.where(transitions <= 2, ones, 9).astype(np.uint8)
    return np.pad(codes, ((0, 0), (1, 1), (1, 1)), constant_values=9)


class _Pooler:
    """Per-photo (and per-ring) histograms and means of masked pixels, one bincount each."""

    def __init__(self, mask: np.ndarray, rings: int) -> None:
        n, h, w = mask.shape
        self.n, self.rings = n, rings
        self.where = np.nonzero(mask.ravel())[0]
        photo = self.where // (h * w)
        self.photo = photo
        self.count = np.maximum(np.bincount(photo, minlength=n), 1).astype(np.float64)
        # ring of each fruit pixel: distance from the fruit's centre over its largest distance
        yy = (self.where // w) % h
        xx = self.where % w
        cy = np.bincount(photo, yy, n) / self.count
        cx = np.bincount(photo, xx, n) / self.count
        dist = np.hypot(yy - cy[photo], xx - cx[photo])
        far = np.zeros(n * h * w)
        far[self.where] = dist
        far = far.reshape(n, -1).max(1)
        ring = np.minimum((dist / np.maximum(far[photo], 1.0) * rings).astype(np.int64), rings - 1)
        self.cell = photo * rings + ring
        self.cell_count = np.maximum(np.bincount(self.cell, minlength=n * rings), 1).reshape(n, -1)

    def pick(self, values: np.ndarray) -> np.ndarray:
        return values.ravel()[self.where]

    def hist(
        self, values: np.ndarray, lo: float, hi: float, bins: int, by_ring: bool = False
    ) -> np.ndarray:
        """Share of each photo's (or ring's) fruit pixels in ``bins`` equal bins of [lo, hi].

        Values outside go to the end bins. Returns ``(n, cells * bins)``.
        """
        scaled = (self.pick(values).astype(np.float32) - lo) * (bins / (hi - lo))
        index = np.clip(scaled, 0, bins - 1).astype(np.int64)
        cells, count = (
            (self.cell, self.cell_count) if by_ring else (self.photo, self.count[:, None])
        )
        counts = np.bincount(cells * bins + index, minlength=count.size * bins)
        return (counts.reshape(self.n, -1, bins) / count[..., None]).reshape(self.n, -1)

    def tails(self, values: np.ndarray, edges: np.ndarray, by_ring: bool = False) -> np.ndarray:
        """Share of pixels at or above each of ``edges`` (whole numbers, under 40) and below
        each of ``-edges``."""
        hist = self.hist(values, -40, 40, 80, by_ring).reshape(self.n, -1, 80)
        below = np.cumsum(hist, -1)[..., 40 - edges - 1]
        above = np.cumsum(hist[..., ::-1], -1)[..., 40 - edges - 1]
        return np.concatenate([below, above], -1).reshape(self.n, -1)

    def moments(self, values: np.ndarray) -> np.ndarray:
        """Mean and standard deviation over each photo's fruit pixels."""
        v = self.pick(values).astype(np.float64)
        mean = np.bincount(self.photo, v, self.n) / self.count
        sq = np.bincount(self.photo, v * v, self.n) / self.count
        return np.column_stack([mean, np.sqrt(np.maximum(sq - mean**2, 0))])

    def ring_means(self, values: np.ndarray) -> np.ndarray:
        sums = np.bincount(self.cell, self.pick(values), self.n * self.rings)
        return sums.reshape(self.n, -1) / self.cell_count


def _spots(spots: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Largest spot and the number of spots (over 4 pixels) per photo."""
    n = len(spots)
    labels, count = ndimage.label(spots, _CROSS)
    if not count:
        return np.zeros((n, 2))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = sizes[labels].reshape(n, -1).max(1)
    owner = np.zeros(count + 1, np.int64)
    owner[labels.ravel()] = np.arange(n).repeat(spots[0].size)
    many = np.bincount(owner[1:][sizes[1:] > 4], minlength=n)
    return np.column_stack([largest / area, many / 10])


def _shape(mask: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Fruit area (share of the photo) and elongation (minor over major axis)."""
    out = np.zeros((len(mask), 2))
    for i, m in enumerate(mask):
        yy, xx = np.nonzero(m)
        evals = np.linalg.eigvalsh(np.cov(np.stack([yy, xx]).astype(float)))
        out[i] = area[i] / m.size, np.sqrt(evals[0] / max(evals[1], 1e-9))
    return out


def colour_parts(
    images: np.ndarray,
    size: int = 128,
    bins: int = 12,
    rings: int = 3,
    scales: tuple[float, ...] = (3.0, 6.0, 12.0),
    saturation: float = 0.2,
) -> list[tuple[str, np.ndarray]]:
    """Named feature blocks of uint8 photos ``(n, H, W, 3)``, each ``(n, k)`` (the
    parameters are :class:`~.colour.ColourTexture`'s)."""
    s = size
    if images.shape[1:3] != (s, s):
        resample = Image.Resampling.BILINEAR
        images = np.stack([np.asarray(Image.fromarray(x).resize((s, s), resample)) for x in images])
    hue, sat, val = _hue_sat(images)
    mask = _fruit_masks(sat, val, saturation)
    lab = _lab(images)
    pool = _Pooler(mask, rings)
    parts: list[tuple[str, np.ndarray]] = []

    # colour inside the fruit
    parts.append(("hue", pool.hist(hue, 0, 0.35, bins)))
    parts.append(("sat", pool.hist(sat, 0, 1, bins)))
    parts.append(("L", pool.hist(lab[..., 0], 0, 100, bins)))
    parts.append(("a", pool.hist(lab[..., 1], -40, 40, bins)))
    parts.append(("b", pool.hist(lab[..., 2], 0, 100, bins)))
    channels = (hue, sat, lab[..., 0], lab[..., 1], lab[..., 2])
    parts.append(("moments", np.hstack([pool.moments(c) for c in channels])))
    parts.append(("ring_colour", np.hstack([pool.ring_means(lab[..., k]) for k in range(3)])))

    # blemishes: each pixel against its neighbourhood's mean, fruit pixels only
    weight = mask.astype(np.float32)
    gray = lab[..., 0]
    for sigma in scales:
        # a box as wide as a Gaussian of this sigma: fast at any width
        width = 2 * round(1.73 * sigma) + 1
        box = (1, width, width)
        den = np.maximum(ndimage.uniform_filter(weight, box), 1e-3)
        for k, name in enumerate("Lab"):
            channel = lab[..., k]
            local = ndimage.uniform_filter(channel * weight, box) / den
            local -= channel  # positive: darker (or less red / yellow) than around it
            parts.append((f"local_{name}_{sigma:g}", pool.tails(local, _LOCAL_EDGES)))
            if k == 0:
                parts.append((f"moments_L_{sigma:g}", pool.moments(local)))
                tails = pool.tails(local, _LOCAL_EDGES[1::2], by_ring=True)
                parts.append((f"rings_L_{sigma:g}", tails))
                if sigma == scales[len(scales) // 2]:
                    spots = _spots((local > 8.0) & mask, pool.count)
    # dark relative to the whole fruit's median lightness
    median = np.array([np.median(g[m]) for g, m in zip(gray, mask, strict=True)])
    rel = gray / np.maximum(median, 1.0)[:, None, None]
    dark = pool.hist(rel, 0.4, 1.0, 6)
    parts.append(("dark", np.cumsum(dark, 1)[:, :5]))
    parts.append(("spots", spots))

    # texture
    codes = _lbp(gray)
    parts.append(("lbp", pool.hist(codes, 0, 10, 10)))
    gy, gx = np.gradient(gray, axis=(1, 2))
    parts.append(("grad", pool.hist(np.hypot(gx, gy), 0, 16, 8)))

    # shape
    parts.append(("shape", _shape(mask, pool.count)))
    return parts


def colour_texture(
    images: np.ndarray,
    size: int = 128,
    bins: int = 12,
    rings: int = 3,
    scales: tuple[float, ...] = (3.0, 6.0, 12.0),
    saturation: float = 0.2,
    batch: int = 100,
) -> np.ndarray:
    """``(n, features)`` float32 measurements of uint8 photos, ``batch`` photos at a time."""
    images = check_images(images)
    settings = (size, bins, rings, tuple(scales), saturation)
    chunks = [
        np.hstack([f for _, f in colour_parts(images[i : i + batch], *settings)]).astype(np.float32)
        for i in range(0, len(images), batch)
    ]
    if chunks:
        return np.concatenate(chunks)
    probe = np.zeros((1, size, size, 3), np.uint8)
    return np.zeros((0, colour_texture(probe, *settings).shape[1]), np.float32)
