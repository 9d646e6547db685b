"""Decoding every kind of photo, the study's geometries, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from mangograde.basics.errors import BadImagesError
from mangograde.images import (
    ImageDecodeError,
    Resize,
    ResizeCenterCrop,
    decode,
    load_images,
    photo_size,
)

from .helpers import noisy, solid, write_photo


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".bmp", ".tif"])
def test_every_format_decodes_to_rgb_uint8(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    solid((200, 100, 50)).save(path)
    pixels = decode(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (30, 40, 3)
    assert np.abs(pixels.astype(int) - [200, 100, 50]).max() <= 6


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Image.new("CMYK", (40, 30), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.new("L", (40, 30), 90), (90, 90, 90)),
        (lambda: solid((10, 200, 30)).quantize(4), (10, 200, 30)),
        (lambda: Image.new("RGBA", (40, 30), (255, 0, 0, 0)), (255, 255, 255)),
        (lambda: Image.new("LA", (40, 30), (0, 255)), (0, 0, 0)),
        (lambda: Image.fromarray(np.full((30, 40), 32896, np.uint16)), (128, 128, 128)),
        (lambda: Image.fromarray(np.full((30, 40), 65535, np.uint16)), (255, 255, 255)),
    ],
    ids=["cmyk", "gray", "palette", "transparent", "gray-alpha", "16bit-mid", "16bit-max"],
)
def test_odd_modes_become_rgb(tmp_path, make, expected):
    image = make()
    path = tmp_path / ("p.jpg" if image.mode == "CMYK" else "p.png")
    image.save(path)
    pixels = decode(path)
    assert pixels.shape == (30, 40, 3) and pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - expected).max() <= 3


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:10] = (255, 0, 0)  # red top half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    pixels = decode(path)
    assert pixels.shape == (40, 20, 3)
    assert pixels[:, -3:, 0].mean() > 200 and pixels[:, :3, 0].mean() < 50  # red on the right
    assert photo_size(path) == (20, 40)


def test_resize_center_crop_drops_the_border(tmp_path):
    image = np.zeros((300, 300, 3), np.uint8)
    image[30:270, 30:270] = (0, 200, 0)  # green centre, black border of 10% each side
    path = tmp_path / "c.png"
    Image.fromarray(image).save(path)
    cropped = decode(path, ResizeCenterCrop(resize=100, crop=80))
    assert cropped.shape == (80, 80, 3)
    assert cropped[..., 1].min() > 150
    assert decode(path, Resize(50)).shape == (50, 50, 3)


def test_large_jpeg_uses_reduced_size_decoding(tmp_path, monkeypatch):
    y, x = np.mgrid[0:1200, 0:1600]
    smooth = np.stack([x * 255 // 1600, y * 255 // 1200, (x + y) * 255 // 2800], -1)
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth.astype(np.uint8)).save(path, quality=95)
    requested = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        requested.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fast = decode(path, Resize(64))
    assert requested == [(64, 64)]
    plain = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR))
    assert np.abs(fast.astype(int) - plain).mean() < 3


def test_bad_files_give_clear_reasons(tmp_path, monkeypatch):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a photo\n")
    (tmp_path / "phone.jpg").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 100)
    write_photo(tmp_path / "whole.jpg", size=(200, 200))
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    write_photo(tmp_path / "huge.png", size=(40, 30))
    reasons = {}
    for name in ["empty.jpg", "text.jpg", "phone.jpg", "cut.jpg", "huge.png"]:
        if name == "huge.png":  # 1,200 pixels against a limit of 2 x 500
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
        with pytest.raises(ImageDecodeError) as info:
            decode(tmp_path / name, Resize(16))
        reasons[name] = info.value.reason
    assert "empty file" in reasons["empty.jpg"]
    assert "text file" in reasons["text.jpg"]
    assert "HEIC" in reasons["phone.jpg"]
    assert "truncated" in reasons["cut.jpg"]
    assert "too large" in reasons["huge.png"]


def test_load_images_lists_every_bad_file_or_skips_them(tmp_path):
    good = [write_photo(tmp_path / f"g{i}.jpg", seed=i) for i in range(3)]
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("nope")
    paths = [good[0], tmp_path / "empty.jpg", good[1], tmp_path / "text.jpg", good[2]]
    with pytest.raises(BadImagesError) as info:
        load_images(paths, Resize(8))
    assert "2 photos cannot be read" in str(info.value)
    assert "empty.jpg" in str(info.value) and "text.jpg" in str(info.value)
    loaded = load_images(paths, Resize(8), skip_bad=True)
    assert loaded.kept.tolist() == [0, 2, 4]
    assert loaded.arrays.shape == (3, 8, 8, 3)
    assert [b.path.name for b in loaded.bad] == ["empty.jpg", "text.jpg"]
    assert "Skipped 2 bad photos" in loaded.notices[0]
    expected = np.asarray(noisy(1).resize((8, 8), Image.BILINEAR))
    assert np.abs(loaded.arrays[1].astype(int) - expected).mean() < 20


def test_other_formats_are_refused_by_name(tmp_path):
    solid((1, 2, 3)).save(tmp_path / "anim.jpg", format="GIF")
    with pytest.raises(ImageDecodeError, match="a GIF image, which mangograde does not read"):
        decode(tmp_path / "anim.jpg")


def test_phone_jpeg_with_multi_picture_block_uses_reduced_decoding(tmp_path, monkeypatch):
    path = tmp_path / "phone.jpg"
    noisy(1, (800, 600)).save(path, format="MPO", save_all=True, append_images=[noisy(2)])
    assert Image.open(path).format == "MPO"
    requested = []
    original = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(
        JpegImagePlugin.JpegImageFile,
        "draft",
        lambda self, mode, size: requested.append(size) or original(self, mode, size),
    )
    assert decode(path, Resize(64)).shape == (64, 64, 3)
    assert requested == [(64, 64)]


def test_truncated_png_is_a_bad_photo_even_for_its_size(tmp_path):
    noisy(3, (64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        photo_size(tmp_path / "cut.png")
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode(tmp_path / "cut.png")


def test_skip_bad_lists_every_skipped_file(tmp_path):
    write_photo(tmp_path / "good.jpg")
    bad = [tmp_path / f"bad{i:02d}.jpg" for i in range(12)]
    for path in bad:
        path.write_bytes(b"")
    loaded = load_images([tmp_path / "good.jpg", *bad], Resize(8), skip_bad=True)
    assert all(str(path) in loaded.notices[0] for path in bad)
