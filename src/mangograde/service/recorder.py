"""``serve``'s records: every request's graded photos (and fruits) kept in the records
database before the answer leaves. One thread writes (SQLite has one writer at a time),
and it writes every request waiting for it in one transaction (group commit): under load
a commit serves many requests, and each answer still leaves only after its commit."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..records import (
    Batch,
    FruitRecord,
    ModelIdentity,
    PhotoRecord,
    RecordsError,
    Store,
    open_store,
)
from .schemas import FruitResult, PhotoResult

DEFAULT_LOT = "unassigned"
FAILURES = ("refuse", "warn")


@dataclass
class Uploaded:
    """A graded photo's upload: what the record keeps of its bytes, and how long it took."""

    sha256: str
    size: int
    latency_ms: float


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
        if not waiting:
            return
        try:
            found = self.store.record_many([batch for batch, _ in waiting])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets it
            for _, done in waiting:
                done.set_exception(exc)
            return
        for (_, done), ids in zip(waiting, found, strict=True):
            done.set_result(ids)

    async def record(
        self,
        lot: str,
        graded: list[tuple[PhotoResult, Uploaded]],
        fruits: list[FruitResult] | None,
    ) -> list[int]:
        """Keep the graded photos; their grading ids. Raises RecordsError when it cannot."""
        photos = [
            PhotoRecord(
                photo=r.image_id,
                sha256=u.sha256,
                size=u.size,
                grade=str(r.grade),
                probabilities=dict(r.probabilities or {}),
                check=bool(r.check),
                reason=r.reason,
                familiarity=r.familiarity,
                latency_ms=u.latency_ms,
                fruit=r.fruit,
            )  # fmt: skip
            for r, u in graded
        ]
        kept = [FruitRecord(f.fruit, f.grade, f.probabilities, bool(f.check), f.reason)
                for f in fruits or []]  # fmt: skip
        done: Future[list[int]] = Future()
        with self._lock:
            self._waiting.append((Batch(lot, self.identity, photos, kept), done))
        self.writer.submit(self._flush)
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.store.engine.dispose()
