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


class Bar:
    """A bar whose text can change as it advances (e.g. a training loss and speed).

    ``with Bar(total, "Training") as bar: bar.advance(1, "loss 0.41")``; silent when
    disabled, like :func:`track`.
    """

    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        self.description = description
        self.enabled = progress_enabled() if enabled is None else enabled
        self._bar: Progress | None = None
        self._task = None
        self.total = total

    def __enter__(self) -> Bar:
        if self.enabled:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=True,
                console=Console(stderr=True),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, status="")
        return self

    def advance(self, steps: int = 1, status: str | None = None) -> None:
        if self._bar is not None and self._task is not None:
            fields = {} if status is None else {"status": status}
            self._bar.update(self._task, advance=steps, **fields)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
