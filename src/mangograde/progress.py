"""Progress bars for long steps: shown on a terminal, silent in tests and pipes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
QUIET_ENV = "MANGOGRADE_QUIET"


def progress_enabled() -> bool:
    """True on an interactive terminal unless ``MANGOGRADE_QUIET=1``."""
    return sys.stderr.isatty() and os.environ.get(QUIET_ENV, "") not in ("1", "true", "yes")


def track(
    items: Iterable[T], total: int, description: str, enabled: bool | None = None
) -> Iterator[T]:
    """Yield ``items`` while drawing a progress bar on stderr when enabled."""
    if not (progress_enabled() if enabled is None else enabled):
        yield from items
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
