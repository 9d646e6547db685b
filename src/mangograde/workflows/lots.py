"""``mangograde lots``' reports: a lot's grade mix, checks by reason, corrections, models
and fruits as one self-contained HTML page, or every grading as a CSV."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

from ..basics.atomic import atomic_open
from ..basics.csvcells import text_row
from ..basics.errors import SettingsError
from ..records import LotSummary, Store


def _shares(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{k} {n} ({n / max(1, total):.0%})" for k, n in counts.items()) or "none"


def mix_line(summary: LotSummary) -> str:
    """``A 12 (60%), B 8 (40%)``: the lot's photos by grade after corrections, best first."""
    return _shares(summary.mix, summary.gradings)


def fruit_mix_line(summary: LotSummary) -> str:
    """The lot's fruits by grade, best first (``none`` when no fruits were given)."""
    return _shares(summary.fruit_mix, summary.n_fruits)


def checks_line(summary: LotSummary) -> str:
    """``3 (unfamiliar 1 (5%), unsure 2 (10%))``: photos left to check by hand."""
    if not summary.checks_left:
        return "none"
    return f"{summary.checks_left} ({_shares(summary.checks, summary.gradings)})"


def write_lot_report(store: Store, name: str, path: Path) -> Path:
    """``path``: ``.html`` (the summary and a table a fruit) or ``.csv`` (every grading)."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".csv"):
        raise SettingsError(f"--out {path}: give a .html or a .csv file.")
    if suffix == ".csv":
        return _write_csv(store.gradings(name), path)
    return _write_html(store.summary(name, detail=True), path)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Every grading a row; names a spreadsheet would take for formulas (a fruit named
    ``=2+3``) are written as text (:mod:`mangograde.basics.csvcells`)."""
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["id"]
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(text_row(columns))
        for row in rows:
            writer.writerow(text_row("" if row.get(k) is None else row[k] for k in columns))
    return path


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _write_html(summary: LotSummary, path: Path) -> Path:
    with atomic_open(path) as handle:
        handle.write(lot_html(summary))
    return path


def lot_html(summary: LotSummary) -> str:
    """The lot's report as one self-contained HTML page."""
    total = max(1, summary.gradings)
    mix = [[g, n, f"{n / total:.1%}"] for g, n in summary.mix.items()]
    fruit_total = max(1, summary.n_fruits)
    fruit_mix = [[g, n, f"{n / fruit_total:.1%}"] for g, n in summary.fruit_mix.items()]
    checks = [[r, n, f"{n / total:.1%}"] for r, n in summary.checks.items()]
    models = [[m, n] for m, n in summary.models.items()]
    fruits = [[f["fruit"], f["photos"], f["grade"], "yes" if f["check"] else "no", f["reason"],
               f["time"]] for f in summary.fruits]  # fmt: skip
    title = f"Lot {summary.name}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Created {summary.created:%Y-%m-%d %H:%M} UTC; {summary.gradings} photos graded"
        f"{'' if summary.last is None else f', the last at {summary.last:%Y-%m-%d %H:%M} UTC'}"
        f"; {summary.corrections} corrections; {summary.unfamiliar} photos unfamiliar.</p>",
        "<h2>Fruits by grade</h2>",
        _table(["grade", "fruits", "share"], fruit_mix)
        if fruit_mix else "<p>None: photos were graded one by one.</p>",
        "<h2>Photos by grade (after corrections)</h2>",
        _table(["grade", "photos", "share"], mix),
        f"<h2>Left to check by hand: {summary.checks_left}</h2>",
        _table(["reason", "photos", "share"], checks) if checks else "<p>None.</p>",
        "<h2>Models used</h2>",
        _table(["run (model SHA-256)", "photos"], models),
        "<h2>Fruits graded from several photos</h2>",
        _table(["fruit", "photos", "grade", "check", "reason", "time (UTC)"], fruits)
        if fruits else "<p>None: photos were graded one by one.</p>",
    ]  # fmt: skip
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:"
             "collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:left}")  # fmt: skip
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"
