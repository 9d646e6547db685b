"""Hand-made colour, blemish and texture features of the fruit, for classical models."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import SettingsError
from .pixels import check_images

_LBP_BINS = 10  # uniform LBP with 8 neighbours: 0-8 plus "non-uniform"


# sRGB 0-255 to linear light, as a lookup table
_LINEAR = np.where(
    np.arange(256) / 255 > 0.04045,
    ((np.arange(256) / 255 + 0.055) / 1.055) ** 2.4,
    np.arange(256) / 255 / 12.92,
).astype(np.float32)
# linear RGB to XYZ (D65), each row divided by the white point
_XYZ = (
    np.array(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
         [0.019334, 0.119193, 0.950227]]
    )  # fmt: skip
    / np.array([[0.950456], [1.0], [1.088754]])
).astype(np.float32)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (0-1), saturation and value of float RGB in 0-1."""
    mx = rgb.max(-1)
    delta = mx - rgb.min(-1)
    safe = np.where(delta > 0, delta, 1.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(mx == r, (g - b) / safe % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = np.where(delta > 0, hue / 6.0, 0.0)
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat, mx


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)


def _lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of uint8 sRGB, any leading shape."""
    f = _lab_f(_LINEAR[image] @ _XYZ.T)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


def _fruit_mask(sat: np.ndarray, val: np.ndarray, threshold: float) -> np.ndarray:
    """Saturated (or dark) pixels, largest blob, holes filled, edge eroded a little."""
    mask = (sat > threshold) | (val < 0.25)
    mask = ndimage.binary_opening(mask, iterations=2)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == sizes.argmax()
    mask = ndimage.binary_fill_holes(mask)
    eroded = ndimage.binary_erosion(mask, iterations=3)
    if eroded.sum() < 0.02 * mask.size:  # no fruit found: fall back on a centre disc
        h, w = mask.shape
        yy, xx = np.ogrid[:h, :w]
        eroded = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2 < 1
    return eroded


def _lbp(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP codes (8 neighbours, radius 1), 0-9."""
    c = gray[1:-1, 1:-1]
    offsets = [(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)]
    h, w = gray.shape
    bits = np.stack([gray[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= c for dy, dx in offsets])
    ones = bits.sum(0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(0)
    codes = np.where(transitions <= 2, ones, 9)
    return np.pad(codes, 1, constant_values=9)


def _hist(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return counts / max(len(values), 1)


class ColourTexture(TransformerMixin, BaseEstimator):
    """Colour, blemish and texture features of the fruit in ``(n, H, W, 3)`` uint8 photos.

    Each photo is resized to ``size`` x ``size``; the fruit is found as the largest
    saturated blob (the background is pale); then, inside it: hue / saturation / value and
    Lab histograms, per-channel statistics, the fraction of dark and of locally dark pixels
    (blemishes) at several thresholds, overall and in ``rings`` rings from the centre out,
    a uniform local-binary-pattern histogram and gradient statistics, and a few shape
    numbers. Pure numpy and scipy; deterministic; no state is learnt in ``fit``.

    Parameters
    ----------
    size : int
        Side, in pixels, that photos are resized to before the features are taken.
    bins : int
        Bins of each colour histogram.
    rings : int
        Concentric rings (by distance from the fruit's centre) for the blemish fractions.
    saturation : float
        Saturation (0-1) above which a pixel counts as fruit, not background.
    blur : float
        Gaussian sigma, in pixels at ``size``, of the local background that "locally dark"
        pixels are compared with.

    Examples
    --------
    >>> import numpy as np
    >>> photos = np.full((2, 64, 64, 3), 230, np.uint8)
    >>> photos[:, 16:48, 16:48] = (200, 180, 40)
    >>> ColourTexture(size=64).fit_transform(photos).shape[0]
    2
    """

    def __init__(
        self,
        size: int = 128,
        bins: int = 16,
        rings: int = 3,
        saturation: float = 0.2,
        blur: float = 4.0,
    ) -> None:
        self.size = size
        self.bins = bins
        self.rings = rings
        self.saturation = saturation
        self.blur = blur

    def fit(self, X: np.ndarray, y: object = None) -> ColourTexture:
        check_images(X)
        if self.size < 16:
            raise SettingsError(f"size must be at least 16 pixels, got {self.size}.")
        if self.bins < 2 or self.rings < 1:
            raise SettingsError("bins must be at least 2 and rings at least 1.")
        if not 0 < self.saturation < 1:
            raise SettingsError(f"saturation must lie in (0, 1), got {self.saturation}.")
        self.n_features_out_ = self._one(np.zeros((self.size, self.size, 3), np.uint8)).size
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        images = check_images(X)
        return np.stack([self._one(image) for image in images]).astype(np.float32)

    def _one(self, image: np.ndarray) -> np.ndarray:
        return np.concatenate([np.ravel(f) for _, f in self._parts(image)])

    def _parts(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        if image.shape[:2] != (self.size, self.size):
            image = np.asarray(
                Image.fromarray(image).resize((self.size, self.size), Image.Resampling.BILINEAR)
            )
        hue, sat, val = _hsv(image.astype(np.float32) / 255.0)
        mask = _fruit_mask(sat, val, self.saturation)
        if not mask.any():
            mask[self.size // 2, self.size // 2] = True
        lab = _lab(image)
        gray = lab[..., 0]
        parts: list[tuple[str, np.ndarray]] = []

        # colour histograms and statistics inside the fruit
        h, s, v = hue[mask], sat[mask], val[mask]
        L, a, b = lab[mask].T
        parts.append(("hist_hsv", np.stack([
            _hist(h, self.bins, 0.0, 0.35), _hist(s, self.bins, 0, 1), _hist(v, self.bins, 0, 1)
        ])))  # fmt: skip
        parts.append(("hist_lab", np.stack([
            _hist(L, self.bins, 0, 100), _hist(a, self.bins, -40, 40), _hist(b, self.bins, 0, 100)
        ])))  # fmt: skip
        channels = np.stack([h, s, v, L, a, b])
        parts.append(("stats", np.r_[channels.mean(1), channels.std(1)]))
        parts.append(("pct", np.percentile(channels, [5, 25, 50, 75, 95], axis=1)))

        # rings from the centre out
        yy, xx = np.nonzero(mask)
        dist = np.hypot(yy - yy.mean(), xx - xx.mean())
        ring = np.minimum((dist / max(dist.max(), 1.0) * self.rings).astype(int), self.rings - 1)
        count = np.maximum(np.bincount(ring, minlength=self.rings), 1)

        def by_ring(values: np.ndarray) -> np.ndarray:
            # mean of each row of ``values`` over the whole fruit and in each ring
            per = np.stack([np.bincount(ring, w, self.rings) for w in values]) / count
            return np.column_stack([values.mean(1), per])

        parts.append(("ring_colour", by_ring(np.stack([L, a, b]))))

        # blemishes: dark relative to the fruit, and dark relative to the neighbourhood
        median_l = max(float(np.median(L)), 1.0)
        rel = L / median_l
        blurred = _masked_blur(gray, mask, self.blur)
        local = (blurred - gray)[mask]
        dark_t = np.array([0.5, 0.6, 0.7, 0.8])
        local_t = np.array([4.0, 8.0, 12.0, 18.0])
        parts.append(("dark", by_ring((rel[None] < dark_t[:, None]).astype(float))))
        parts.append(("local", by_ring((local[None] > local_t[:, None]).astype(float))))
        parts.append(("local_pct", np.percentile(local, [50, 90, 95, 99])))
        # size of the largest dark spot, as a share of the fruit
        spots = np.zeros_like(mask)
        spots[mask] = (local > 8.0) | (rel < 0.6)
        labels, n_spots = ndimage.label(spots)
        sizes = np.bincount(labels.ravel())[1:] if n_spots else np.zeros(1)
        parts.append(("spots", np.array([sizes.max() / L.size, n_spots / 10, (sizes > 4).sum() / 10])))

        # texture: LBP histogram and gradient magnitude inside the fruit
        codes = _lbp(gray)[mask]
        parts.append(("lbp", np.bincount(codes, minlength=_LBP_BINS)[:_LBP_BINS] / codes.size))
        gy, gx = np.gradient(gray)
        grad = np.hypot(gx, gy)[mask]
        parts.append(("grad", np.r_[grad.mean(), grad.std(), np.percentile(grad, [50, 90, 99])]))

        # shape
        parts.append(("shape", np.array([mask.mean(), _aspect(yy, xx)])))
        return parts


def _masked_blur(gray: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of ``gray`` over the mask only (so the background does not leak in)."""
    m = mask.astype(np.float32)
    num = ndimage.gaussian_filter(gray * m, sigma)
    den = ndimage.gaussian_filter(m, sigma)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), gray)


def _aspect(yy: np.ndarray, xx: np.ndarray) -> float:
    if yy.size < 3:
        return 1.0
    evals = np.linalg.eigvalsh(np.cov(np.stack([yy, xx]).astype(float)))
    return float(np.sqrt(evals[0] / max(evals[1], 1e-9)))
