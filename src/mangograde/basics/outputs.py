"""Where a command may write: never over an input it was given, never inside a run's own
files, and never over an existing file unless the user said ``--overwrite``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file (a symlink loop is no file)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def claim_file(
    path: Path,
    option: str = "--out",
    inputs: Iterable[Path] = (),
    runs: Iterable[Path] = (),
    overwrite: bool = False,
) -> Path:
    """Check that ``path`` may be written as a file, before any work is done.

    ``inputs``: files and folders the command reads (labels, groups, photos, a settings
    file): never written over, nor anything inside those folders;
    ``runs``: run folders it reads, whose files are theirs except ``evaluations/``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give the name of a file to write.")
    for given in map(Path, inputs):
        if same_file(path, given):
            raise OutputError(
                f"{option} {path} is one of this command's inputs ({given}); writing there "
                "would destroy it. Choose another file name."
            )
        if given.is_dir() and _inside(path, given):
            raise OutputError(
                f"{option} {path} is inside {given}, a folder of photos this command reads: "
                "an output is never written among its inputs (--overwrite or not). Write "
                "it elsewhere."
            )
    for run in runs:
        run = Path(run)
        if _inside(path, run) and not _inside(path, run / "evaluations"):
            raise OutputError(
                f"{option} {path} is inside the run folder {run}, whose files belong to the "
                "run. Write elsewhere (or under its evaluations/ folder)."
            )
    if path.exists() and not overwrite:
        raise OutputError(
            f"{option} {path} already exists. Choose another file name, or pass --overwrite "
            "to replace it."
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{option} {path}: {path.parent} is a file, not a folder.")
    return path


def claim_folder(
    path: Path, option: str = "--out", inputs: Iterable[Path] = (), runs: Iterable[Path] = ()
) -> Path:
    """Check that ``path`` can be a folder of outputs (it is not a file, nor inside one
    of the folders of photos ``inputs``, nor one of the run folders ``runs`` the command
    reads or inside one: ``--overwrite`` never replaces a command's own input)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file; give a folder to write into.")
    for run in map(Path, runs):
        if _inside(path, run):
            where = "the run folder" if same_file(path, run) else "inside the run folder"
            raise OutputError(
                f"{option} {path} is {where} {run} that this command reads: writing there "
                "would change or replace that run (--overwrite or not). Write to a new "
                "folder outside it."
            )
    for given in map(Path, inputs):
        if given.is_dir() and _inside(path, given):
            raise OutputError(
                f"{option} {path} is inside {given}, a folder of photos this command reads: "
                "its outputs would be read as photos next time. Write it elsewhere."
            )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{option} {path}: {parent} is a file, not a folder.")
            break
    return path
