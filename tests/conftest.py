"""Fixtures: every photo a test needs is drawn here, tiny, on the fly."""

from __future__ import annotations

import itertools
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


_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of its own for the session (skipped where none is installed)."""
    from .postgres_helpers import postgres_cluster, why_not

    reason = why_not()
    if reason is not None:
        pytest.skip(f"PostgreSQL records tests skipped: {reason}")
    with postgres_cluster() as cluster:
        yield cluster.url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A new, empty records database: SQLite, then a real PostgreSQL."""
    from .postgres_helpers import new_database

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return new_database(request.getfixturevalue("postgres"), f"t{next(_databases)}")


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory):
    """A tiny colour-texture run (3 folds) and the synthetic photos it was trained on."""
    from mangograde.data.synth import synthesize

    from .service_helpers import train_tiny

    root = synthesize(tmp_path_factory.mktemp("records") / "s", n=36, size=48, seed=2)
    run = train_tiny(root, root.parent / "colour", "--preset", "colour-texture", "--cv", "3",
                     "--set", "n_estimators=20")  # fmt: skip
    return root, run


@pytest.fixture
def lines():
    """The JSON lines the service logs during a test."""
    import logging

    from mangograde.service.telemetry import LOG

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    LOG.addHandler(handler)
    yield records
    LOG.removeHandler(handler)
