"""Outputs appear whole or not at all: each is written to a temporary file beside its
target and renamed into place, so a kill or a full disk never leaves half a file."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import OutputError


def _mount_point(path: Path) -> Path:
    """The mount point holding ``path`` (the device a full disk is named by)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    device = path.stat().st_dev
    while path.parent != path and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < 2**20
    except OSError:
        return False


def output_error(exc: OSError, path: Path) -> OutputError:
    """An OSError met while writing ``path``, worded for the user."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"No space left on {_mount_point(path)} while writing {path}. Nothing was left "
            "half-written; free some space and run the command again."
        )
    reason = exc.strerror or str(exc)
    return OutputError(f"Cannot write {path}: {reason}. Choose another place to write to.")


@contextmanager
def atomic_path(path: str | Path, shared: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed onto ``path`` when the
    block ends without an error, deleted otherwise. ``shared``: readable by others as
    the umask allows (a temporary file starts private)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
    except OSError as exc:
        raise output_error(exc, path) from None
    tmp = Path(name)
    try:
        yield tmp
        if shared:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(exc, path) from None
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if _disk_full(path):  # e.g. torch.save's own "file write failed"
            raise output_error(OSError(errno.ENOSPC, "no space left"), path) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose file appears only once it is complete."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, tmp.open(mode, **kwargs) as handle:
        yield handle


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)
