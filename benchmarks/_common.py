"""Shared bits of the benchmarks: where the data is, and a machine line for RESULTS.md."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def data_dir(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        sys.exit(f"{path} is not there: the benchmarks need ../shared/data beside the repository.")
    return path


def machine() -> str:
    import PIL

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Pillow {PIL.__version__}"
    )
