"""Progress for long steps: a live bar on a terminal, plain log lines in a pipe or a log
file, nothing with --quiet (or ``MANGOGRADE_QUIET=1``, as in the tests)."""

from __future__ import annotations

import os
import sys
import time
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


def progress_mode(enabled: bool | None = None) -> str:
    """``bar`` on an interactive terminal, ``lines`` (plain log lines) under a pipe or
    ``nohup``, ``off`` with ``enabled=False`` (--quiet) or ``MANGOGRADE_QUIET=1``."""
    if enabled is False:
        return "off"
    if enabled is None and os.environ.get(QUIET_ENV, "") in ("1", "true", "yes"):
        return "off"
    return "bar" if enabled or sys.stderr.isatty() else "lines"


def progress_enabled() -> bool:
    """True where a live bar is drawn."""
    return progress_mode() == "bar"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def track(
    items: Iterable[T],
    total: int,
    description: str,
    enabled: bool | None = None,
    every: int | None = None,
) -> Iterator[T]:
    """Yield ``items`` while showing progress on stderr (see :class:`Bar`)."""
    with Bar(total, description, enabled, every) as bar:
        for item in items:
            yield item
            bar.advance(1)


class Bar:
    """Progress whose text can change as it advances (e.g. a training loss and speed).

    ``with Bar(total, "Training") as bar: bar.advance(1, "loss 0.41")``. On a terminal a
    live bar; elsewhere (a pipe, ``nohup``) a plain line with elapsed time and ETA every
    ``every`` steps (default: a tenth of the way, or each step of a short task); silent
    when disabled.
    """

    def __init__(
        self,
        total: int,
        description: str,
        enabled: bool | None = None,
        every: int | None = None,
    ) -> None:
        self.description = description
        self.mode = progress_mode(enabled)
        if self.mode == "lines" and total <= 1:
            self.mode = "off"  # one photo or one fold: a log line says nothing
        self.enabled = self.mode == "bar"
        self.every = max(1, every or (1 if total <= 50 else total // 10))
        self.total = total
        self._bar: Progress | None = None
        self._task = None
        self._done = 0
        self._next = self.every
        self._start = time.perf_counter()

    def __enter__(self) -> Bar:
        self._start = time.perf_counter()
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
        elif self.mode == "lines":
            self._done += steps
            if self._done >= self._next or self._done >= self.total:
                self._line(status)
                self._next = (self._done // self.every + 1) * self.every

    def _line(self, status: str | None) -> None:
        elapsed = time.perf_counter() - self._start
        left = elapsed / self._done * max(0, self.total - self._done) if self._done else 0.0
        share = self._done / self.total if self.total else 1.0
        text = (
            f"{self.description}: {self._done}/{self.total} ({share:.0%}), "
            f"{_clock(elapsed)} elapsed, ETA {_clock(left)}"
        )
        print(text + (f"  {status}" if status else ""), file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
