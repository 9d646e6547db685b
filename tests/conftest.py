"""Fixtures: every photo a test needs is drawn here, tiny, on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import write_photo


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own image cache and no progress bars."""
    monkeypatch.setenv("MANGOGRADE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("MANGOGRADE_QUIET", "1")


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Six photos a1..c2 in one folder, as in the competition's layout."""
    folder = tmp_path / "photos"
    for i, name in enumerate(["a1", "a2", "b1", "b2", "c1", "c2"]):
        write_photo(folder / f"{name}.jpg", seed=i)
    return folder


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """Three grade folders (Extra_Class, Class_I, Class_II) of four photos each."""
    root = tmp_path / "graded"
    for g, grade in enumerate(["Extra_Class", "Class_I", "Class_II"]):
        for i in range(4):
            write_photo(root / grade / f"img_{g}{i}.jpg", seed=10 * g + i)
    return root
