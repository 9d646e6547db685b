"""Tiny photos and CSV files drawn on the fly for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not present"
)


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def noisy(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def write_photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    """A small JPEG (or whatever the suffix says) with content unique to ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noisy(seed, size).save(path)
    return path


def write_csv(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def as_the_run_grades(run_dir, proba, fold):
    """A fold bundle's raw probabilities as the run grades with them: scaled by the
    temperature that fold was calibrated with, where the run is calibrated (the default of
    runs trained by fruit since calibration=auto)."""
    from mangograde.evaluation.temperature import apply_temperature
    from mangograde.runs import open_run

    temperature = open_run(run_dir).temperature(fold)
    return proba if temperature is None else apply_temperature(proba, temperature)
