"""crop=fruit: the CNN families decode a square around the fruit instead of the whole photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mangograde.basics.errors import SettingsError
from mangograde.images.geometry import FruitCrop, fruit_box, read_geometry

from .service_helpers import NO_FLIPS, TINY_CNN, train_tiny
from .test_cli import run
from .test_cli_models import read_csv


def fruit_photo(box: tuple[int, int, int, int], size: tuple[int, int] = (300, 150)) -> Image.Image:
    """A green ellipse (the fruit) with a dark spot on a pale grey background."""
    image = Image.new("RGB", size, (235, 235, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse(box, fill=(140, 170, 60))
    draw.ellipse((box[0] + 10, box[1] + 10, box[0] + 20, box[1] + 20), fill=(40, 30, 20))
    return image


def test_the_fruit_keeps_its_shape_and_fills_the_crop():
    photo = fruit_photo((170, 30, 270, 130))  # a round fruit right of centre in a wide photo
    left, top, right, bottom = fruit_box(photo)
    assert abs(left - 170) <= 6 and abs(right - 270) <= 6 and abs(top - 30) <= 6
    crop = np.asarray(FruitCrop(100, fill=0.8).apply(photo))
    green = (crop[..., 1].astype(int) - crop[..., 2] > 60).mean(axis=(0, 1))
    # A disc filling 80% of the side covers pi/4 * 0.8^2 of the square: ~0.50.
    assert green == pytest.approx(np.pi / 4 * 0.8**2, abs=0.06)
    rows, columns = np.nonzero(crop[..., 1].astype(int) - crop[..., 2] > 60)
    assert abs((rows.max() - rows.min()) - (columns.max() - columns.min())) <= 3  # still round
    # A plain resize of the same photo squashes the disc to half its width.
    squashed = np.asarray(photo.resize((100, 100)))
    rows, columns = np.nonzero(squashed[..., 1].astype(int) - squashed[..., 2] > 60)
    assert (columns.max() - columns.min()) < 0.6 * (rows.max() - rows.min())


def test_no_fruit_means_the_whole_photo_and_bad_settings_are_named():
    blank = Image.new("RGB", (120, 80), (240, 240, 240))
    assert fruit_box(blank) == (0, 0, 120, 80)
    assert FruitCrop(32).apply(blank).size == (32, 32)
    with pytest.raises(SettingsError, match="share of the crop"):
        FruitCrop(32, fill=0.1)
    geometry = FruitCrop(64, 0.9)
    assert read_geometry({"kind": "fruit-crop", "size": 64, "fill": 0.9}) == geometry


def test_a_fruit_crop_run_trains_grades_and_exports_with_its_geometry(tmp_path):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path / "run", *TINY_CNN, *NO_FLIPS, "--set", "crop=fruit")
    manifest = json.loads(next((out / "model").rglob("bundle.json")).read_text())
    assert manifest["preprocessing"]["geometry"] == {"kind": "fruit-crop", "size": 37,
                                                      "fill": 0.85}  # fmt: skip
    exported = tmp_path / "onnx"
    assert run("export", out, "--format", "onnx", "--out", exported).exit_code == 0
    graded = {}
    for grader in (out, exported):
        done = run("predict", grader, root / "dev", "--out", tmp_path / f"{grader.name}.csv")
        assert done.exit_code == 0, done.output
        rows = read_csv(tmp_path / f"{grader.name}.csv")
        graded[grader.name] = np.array([[float(r[f"p_{g}"]) for g in "ABC"] for r in rows])
    assert np.abs(graded["run"] - graded["onnx"]).max() < 1e-4
    refused = run("train", root / "train", "--labels", root / "train.csv", *TINY_CNN,
                  "--set", "crop=middle", "--out", tmp_path / "bad")  # fmt: skip
    assert refused.exit_code != 0 and "Unknown crop 'middle'" in refused.output
