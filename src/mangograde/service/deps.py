"""The routes' dependencies: the API keys (who is asking) and the service's state."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request

from ..basics.errors import SettingsError
from .state import ServeOptions, ServiceState

KEY_NAME = "api-key"  # the operator of a key file holding one bare key
KEY_FILE_LIMIT = 64 * 1024


def service_of(request: Request) -> ServiceState:
    """The state of the service answering ``request``."""
    state: ServiceState = request.app.state.service
    return state


def key_guard(options: ServeOptions) -> list[Any]:
    """The dependency every ``/v1`` route has: a request without a known key is refused
    (401); a known key names the request's operator (``request.state.key_name``)."""
    keys = {**options.api_keys, **({KEY_NAME: options.api_key} if options.api_key else {})}

    def api_key(request: Request) -> None:
        if not keys:
            return
        # Header values arrive as latin-1 text: back to the bytes the client sent (UTF-8).
        given = request.headers.get("x-api-key", "").encode("latin-1")
        found = [n for n, k in keys.items() if hmac.compare_digest(given, k.encode("utf-8"))]
        if not found:
            raise HTTPException(401, "Missing or wrong API key: send it in the X-API-Key header.")
        request.state.key_name = found[0]

    guard: Callable[[Request], None] = api_key
    return [Depends(guard)]


def read_api_keys(path: str | Path) -> dict[str, str]:
    """The keys in ``path``, by operator name (never printed): one a line, either the key
    alone (named ``api-key``) or ``NAME KEY``; blank lines and ``#`` comments skipped."""
    path = Path(path)
    try:
        if not path.is_file():  # not /dev/zero, a FIFO or a folder: they never end, or hang
            raise SettingsError(f"--api-key-file {path} is not a regular file of keys.")
        with path.open("rb") as handle:
            raw = handle.read(KEY_FILE_LIMIT + 1)
        if len(raw) > KEY_FILE_LIMIT:
            raise SettingsError(
                f"--api-key-file {path} is over {KEY_FILE_LIMIT // 1024} KiB: not a file of keys."
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--api-key-file {path}: cannot read it ({exc}).") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) > 2:
            raise SettingsError(f"--api-key-file {path}, line {number}: expected KEY or "
                                f"NAME KEY, found {len(words)} words.")  # fmt: skip
        name, key = (KEY_NAME, words[0]) if len(words) == 1 else (words[0], words[1])
        if name in keys or key in keys.values():
            raise SettingsError(f"--api-key-file {path}, line {number}: the name {name!r} or "
                                "its key is given twice.")  # fmt: skip
        keys[name] = key
    if not keys:
        raise SettingsError(f"--api-key-file {path} is empty: put the key in it.")
    return keys
