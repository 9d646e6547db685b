"""A connection that never finishes its request headers is closed (uvicorn waits forever).

uvicorn times out idle kept-alive connections but not a client that sends half a header and
stops (or 300 such clients at once, each holding a socket and its buffers). The body has
its own timeout in :class:`~mangograde.service.guard.UploadLimit`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_ENV = "MANGOGRADE_HEADER_TIMEOUT"  # seconds (serve --header-timeout)
HEADER_TIMEOUT_S = 10.0
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on an incomplete request head


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose first request headers are not
    complete within ``$MANGOGRADE_HEADER_TIMEOUT`` seconds (default 10; every worker
    process reads it)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        seconds = float(os.environ.get(HEADER_TIMEOUT_ENV, HEADER_TIMEOUT_S))
        self._headers_due = self.loop.call_later(seconds, self._headers_late)

    def _headers_late(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Any) -> None:
        self._headers_due.cancel()
        super().connection_lost(exc)


def uvicorn_limits(max_connections: int) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` that bound slow and numerous clients."""
    return {
        "http": HeaderTimeoutProtocol,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": max_connections,
        "timeout_keep_alive": 5,
    }
