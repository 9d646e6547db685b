"""``serve``'s records: every request's graded photos (and fruits) kept in the records
database before the answer leaves. One thread writes (SQLite has one writer at a time),
and it writes every request waiting for it in one transaction (group commit): under load
a commit serves many requests, and each answer still leaves only after its commit."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..records import Batch, LotClosed, ModelIdentity, RecordsError, Store, open_store

DEFAULT_LOT = "unassigned"
FAILURES = ("refuse", "warn")


class Recorder:
    def __init__(self, url: str, identity: ModelIdentity, failures: str = "refuse") -> None:
        if failures not in FAILURES:
            raise RecordsError(f"--record-failures must be refuse or warn, not {failures!r}.")
        self.store: Store = open_store(url)
        self.identity = identity
        self.failures = failures
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="record")
        self._waiting: list[tuple[Batch, Future[list[int]]]] = []
        self._lock = threading.Lock()

    def _flush(self) -> None:
        """Write every waiting request in one transaction; each learns its ids, or the error."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        if waiting:
            self._write(waiting)

    def _write(self, waiting: list[tuple[Batch, Future[list[int]]]]) -> None:
        try:
            found = self.store.record_many([batch for batch, _ in waiting])
        except LotClosed as exc:  # refused: the requests for that lot; the others go on
            for batch, done in waiting:
                if batch.lot == exc.lot:
                    done.set_exception(exc)
            rest = [w for w in waiting if w[0].lot != exc.lot]
            if rest:
                self._write(rest)
            return
        except Exception as exc:  # noqa: BLE001 - every waiting request gets it
            for _, done in waiting:
                done.set_exception(exc)
            return
        for (_, done), ids in zip(waiting, found, strict=True):
            done.set_result(ids)

    async def record(self, batch: Batch) -> list[int]:
        """Keep a request's gradings (:func:`mangograde.records.batch_of`); their ids.
        Raises RecordsError when they cannot be kept."""
        done: Future[list[int]] = Future()
        with self._lock:
            self._waiting.append((batch, done))
        self.writer.submit(self._flush)
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.store.engine.dispose()
