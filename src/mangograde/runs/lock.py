"""One writer per run folder: an exclusive lock beside it, held for the whole training."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from ..basics.atomic import output_error
from ..basics.errors import OutputError


def lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


class RunLock:
    """``with RunLock(out):`` -- a second writer of ``out`` fails at once, naming the first.

    The lock is the operating system's (``flock``) on ``.NAME.lock`` beside the run
    folder, so it ends with the process that holds it: a lock file left by a killed run
    is stale and simply taken over. The file records the holder's pid, host and start.
    """

    def __init__(self, out: Path) -> None:
        self.path = lock_path(Path(out))
        self.out = Path(out)
        self._handle: int | None = None

    def __enter__(self) -> RunLock:
        handle = self._locked_file()
        while handle is None:  # the file was replaced while we waited: lock the new one
            handle = self._locked_file()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(handle, 0)
        os.write(handle, json.dumps(record).encode())
        self._handle = handle
        return self

    def _locked_file(self) -> int | None:
        """The lock file's handle, locked; None if the file we locked is no longer the one
        at the path (its holder removed it as it finished)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise output_error(exc, self.out) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(self.path)
            os.close(handle)
            raise OutputError(
                f"Another mangograde {holder} is writing the run {self.out}. Wait for it to "
                "finish, or train into another --out."
            ) from None
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(handle).st_ino:
            os.close(handle)
            return None
        return handle

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._handle)  # closing releases the lock
            self._handle = None


def _describe(path: Path) -> str:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(record["started"]))
        return f"(pid {record['pid']} on {record['host']}, since {started})"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "(another process)"
