"""``serve``'s records: every request's graded photos (and fruits) kept in the records
database before the answer leaves, in one transaction, written by one thread (SQLite has
one writer at a time; PostgreSQL loses nothing by it at a line's pace)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..records import FruitRecord, ModelIdentity, PhotoRecord, RecordsError, Store, open_store
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
        loop = asyncio.get_running_loop()
        call: Any = self.store.record
        return await loop.run_in_executor(self.writer, call, lot, self.identity, photos, kept)

    def close(self) -> None:
        self.writer.shutdown(wait=True)
        self.store.engine.dispose()
