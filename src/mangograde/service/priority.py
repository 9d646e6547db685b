"""Quick requests first: the threads that grade and decode photos run at a lower
scheduling priority than the event loop, so a correction or a health probe is answered
while every core grades. Linux only (a thread's own nice value); elsewhere nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

BACKGROUND_NICE = 10
_TASKS = Path("/proc/self/task")


def _lower(native_id: int) -> None:
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, native_id)
            os.setpriority(os.PRIO_PROCESS, native_id, max(current, BACKGROUND_NICE))


def background_priority() -> None:
    """A thread pool's initializer: this thread yields to the event loop."""
    if hasattr(threading, "get_native_id"):
        _lower(threading.get_native_id())


def lower_other_threads() -> int:
    """Lower every thread of this process but the calling one (the event loop's): the
    math libraries' worker threads (ONNX Runtime, PyTorch) made while the model loaded.
    Threads started later from the event loop (the records writer) keep its priority.
    How many were lowered."""
    if not _TASKS.is_dir() or not hasattr(threading, "get_native_id"):
        return 0
    mine = threading.get_native_id()
    lowered = 0
    for task in _TASKS.iterdir():
        if task.name.isdigit() and int(task.name) != mine:
            _lower(int(task.name))
            lowered += 1
    return lowered
