"""Micro-batching: photos from concurrent requests graded together in one forward pass.

Requests put decoded photos on a queue; one task collects up to ``max_batch`` of them, or
what arrives within ``wait_s`` of the first, and grades them in a worker thread, so the
event loop keeps accepting uploads meanwhile. With ``lanes`` above 1, that many batches are
graded at once, each in its own thread (the grading math leaves Python's lock while it
works: on a 2-core box two lanes grade about a third more photos than one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .priority import background_priority

Grade = Callable[[np.ndarray], tuple[np.ndarray, ...]]


class MicroBatcher:
    """``await batcher.grade(photo)`` -> one photo's row of each array that ``grade``
    returns for a batch (e.g. its probabilities and its grade code)."""

    def __init__(
        self,
        grade: Grade,
        max_batch: int = 32,
        wait_s: float = 0.004,
        on_batch: Callable[[int], None] | None = None,
        background: bool = False,
        lanes: int = 1,
    ) -> None:
        """``background``: the grading threads run at a lower priority than the caller's;
        ``lanes``: batches graded at once."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be 1 or more, got {max_batch}.")
        if lanes < 1:
            raise ValueError(f"lanes must be 1 or more, got {lanes}.")
        self.lanes = lanes
        self._grade = grade
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        lower = background_priority if background else None
        self._executor = ThreadPoolExecutor(lanes, thread_name_prefix="grader", initializer=lower)
        self._free: asyncio.Semaphore | None = None  # a permit a lane
        self._alone: asyncio.Lock | None = None  # held while :meth:`run` takes every lane
        self._grading: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._free, self._alone = asyncio.Semaphore(self.lanes), asyncio.Lock()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._grading, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def grade(self, photo: np.ndarray) -> tuple[Any, ...]:
        if self._queue is None:
            raise RuntimeError("The batcher is not started.")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((photo, future))
        return await future

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a grader thread: nothing else uses the model meanwhile."""
        if self._free is None or self._alone is None:
            raise RuntimeError("The batcher is not started.")
        async with self._alone:  # one at a time takes every lane
            for _ in range(self.lanes):
                await self._free.acquire()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, function, *args)
        finally:
            for _ in range(self.lanes):
                self._free.release()

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future[Any]]]:
        """The next batch, once a lane is free to grade it (the lane's permit taken)."""
        assert self._queue is not None and self._free is not None
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        await self._free.acquire()  # what arrives meanwhile joins this batch
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            task = asyncio.create_task(self._grade_batch(batch))
            self._grading.add(task)
            task.add_done_callback(self._grading.discard)

    async def _grade_batch(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]]) -> None:
        assert self._free is not None
        try:
            await self._grade_groups(batch)
        finally:
            self._free.release()

    async def _grade_groups(self, batch: list[tuple[np.ndarray, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        waiting = [(photo, future) for photo, future in batch if not future.done()]
        # Photos of one geometry share a shape; group in case a family's do not.
        by_shape: dict[tuple[int, ...], list[tuple[np.ndarray, asyncio.Future[Any]]]] = {}
        for photo, future in waiting:
            by_shape.setdefault(photo.shape, []).append((photo, future))
        for group in by_shape.values():
            images = np.stack([photo for photo, _ in group])
            try:
                parts = await loop.run_in_executor(self._executor, self._grade, images)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch is not None:
                self._on_batch(len(group))
            for i, (_, future) in enumerate(group):
                if not future.done():
                    future.set_result(tuple(part[i] for part in parts))
