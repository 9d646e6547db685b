"""Guards: uploads over the size limit get 413 before they are read whole, and decoded
pixels are rationed so one request of huge photos cannot hold the others."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class UploadLimit:
    """Refuse a request whose declared length is over ``max_bytes`` before reading any of
    it, one that streams more than that as soon as it has, and one whose body stops
    arriving for ``body_timeout_s`` (408)."""

    def __init__(self, app: Any, max_mb: float, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_mb = max_mb
        self.max_bytes = int(max_mb * 2**20)
        self.body_timeout_s = body_timeout_s  # the longest wait for the next piece of a body

    async def _reject(self, send: Any, status: int = 413) -> None:
        detail = (
            f"Upload over the limit of {self.max_mb:g} MB: send fewer or smaller photos."
            if status == 413
            else f"The request's body stopped arriving for {self.body_timeout_s:g} s: send it "
            "again."
        )
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        state = {"received": 0, "over": False, "slow": False, "answered": False}

        async def counted() -> Any:
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                state["slow"] = True
                raise _TooSlow from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    raise _TooLarge
            return message

        async def answer(message: Any) -> None:
            if state["over"] or state["slow"]:  # the app's answer to a cut-off body is replaced
                if not state["answered"]:
                    state["answered"] = True
                    await self._reject(send, 408 if state["slow"] else 413)
                return
            state["answered"] = True
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except (_TooLarge, _TooSlow):
            if not state["answered"]:
                state["answered"] = True
                await self._reject(send, 408 if state["slow"] else 413)


class PixelBudget:
    """At most ``capacity`` decoded pixels in flight at once, first come first served (a
    photo larger than the whole budget decodes alone)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._turns: deque[object] = deque()  # waiting photos, in arrival order
        self._changed = asyncio.Condition()

    async def acquire(self, pixels: int) -> None:
        async with self._changed:
            ticket = object()
            self._turns.append(ticket)

            def my_turn() -> bool:
                fits = self.in_use == 0 or self.in_use + pixels <= self.capacity
                return self._turns[0] is ticket and fits

            try:
                await self._changed.wait_for(my_turn)
            finally:
                self._turns.remove(ticket)
                self._changed.notify_all()
            self.in_use += pixels

    async def release(self, pixels: int) -> None:
        async with self._changed:
            self.in_use -= pixels
            self._changed.notify_all()
