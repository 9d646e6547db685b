"""Reading the small CSV files users bring: any common encoding, line end, header or not."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..basics.csvcells import read_cell
from ..basics.errors import DatasetError

# Tried in order. Big5 is what the competition's Traditional Chinese Windows users save.
ENCODINGS = ("utf-8-sig", "big5", "cp950")


def read_text(path: Path) -> str:
    """Decode a CSV file written in UTF-8 (with or without BOM) or Big5."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DatasetError(
        f"{path} is neither UTF-8 nor Big5 text. Save it as UTF-8 CSV and try again."
    )


def header(path: Path) -> list[str]:
    """The first line's cells, as :func:`read_rows` would split them (no other row read)."""
    first_line = read_text(path).lstrip().split("\n", 1)[0]
    delimiter = next((d for d in ",;\t" if d in first_line), ",")
    return [c.strip() for c in next(csv.reader([first_line], delimiter=delimiter), [])]


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Rows of a CSV file as ``(line number, stripped cells)``, blank lines left out; a
    cell that mangograde wrote with a quote against formulas (``'=2+3``) is read back as
    it was (``=2+3``)."""
    text = read_text(path)
    first_line = text.lstrip().split("\n", 1)[0]
    delimiter = next((d for d in ",;\t" if d in first_line), ",")
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            cells = [read_cell(cell.strip()) for cell in row]
            if any(cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise DatasetError(
            f"{path}, line {reader.line_num + 1}: not a CSV row mangograde can read ({exc}; "
            "an unclosed quote makes the rest of the file one field). Fix the file."
        ) from None
    return rows


def find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    """Index of the first header cell whose lower-cased name is in ``names``."""
    lowered = [cell.strip().lower() for cell in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None
