"""``mangograde lots``' reports and checks: the lot certificate (fruits and photos by
grade, checks left, rejects, unfamiliar photos, corrections by operator, the models used,
first and last grading, who closed the lot, small pictures of the photos left to check,
the SHA-256 digest of the lot's records) as one self-contained HTML page, or every grading
as a CSV with a digest a row; and ``lots verify``, which says whether a lot still matches
a certificate and which rows differ."""

from __future__ import annotations

import base64
import csv
import html
import io
import stat
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

from ..basics.atomic import atomic_open
from ..basics.csvcells import read_cell, text_row
from ..basics.errors import SettingsError
from ..basics.zones import HouseZone, house_zone
from ..records import REJECT, LotSummary
from ..records.certified import closing_in, summary_of, to_check_in
from ..records.digest import (
    EVENTS,
    LOOSE_FRUITS,
    LOT,
    Differences,
    LotRecords,
    check_digest,
    differences,
    lot_digest,
    read_lot,
)

THUMBNAILS = 50  # small pictures inlined in a certificate, at most
THUMB_PX = 96
DIGEST_ROW = "lot SHA-256"  # the CSV's last row: the lot's digest
REJECTS_ROW = "rejects"  # the CSV's row counting the rejects (a count to read: not hashed)
_TRAILER = (LOT, EVENTS, LOOSE_FRUITS)
_KEPT_SUFFIXES = (".jpg", ".png", ".webp", ".bmp", ".tif", ".img")  # as serve keeps them
UTC = HouseZone("UTC", timezone.utc)


def _shares(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{k} {n} ({n / max(1, total):.0%})" for k, n in counts.items()) or "none"


def mix_line(summary: LotSummary) -> str:
    """``A 12 (60%), B 8 (40%)``: the lot's photos by grade after corrections, best first,
    each a share of the photos graded (rejects are no grade: :func:`rejects_line`)."""
    return _shares(summary.mix, summary.graded)


def fruit_mix_line(summary: LotSummary) -> str:
    """The lot's fruits by grade, best first (``none`` when no fruits were given), each a
    share of the fruits graded (the rejected ones apart)."""
    return _shares(summary.fruit_mix, summary.fruits_graded)


def rejects_line(summary: LotSummary) -> str:
    """``rejects 2 (5.0% of the photos)``: photos the operator said are not mangoes (and
    ``, 1 of 3 fruits``: the fruits all of whose photos are rejects, where there are any)."""
    line = f"rejects {summary.rejects} ({_share(summary.rejects, summary.gradings)} of the photos)"
    if summary.fruit_rejects:
        line += f", {summary.fruit_rejects} of {summary.n_fruits} fruits"
    return line


def checks_line(summary: LotSummary) -> str:
    """``3 (unfamiliar 1 (5%), unsure 2 (10%))``: photos left to check by hand."""
    if not summary.checks_left:
        return "none"
    return f"{summary.checks_left} ({_shares(summary.checks, summary.gradings)})"


# -- the certificate ----------------------------------------------------------------------


@dataclass
class Certificate:
    """What a lot's certificate states, read from the records in one go."""

    summary: LotSummary
    records: LotRecords
    zone: HouseZone
    closed: Any = None  # the close that stands (operator, time), or None: open
    to_check: list[dict[str, Any]] = field(default_factory=list)
    pictures: dict[int, str] = field(default_factory=dict)  # grading id -> data: URI
    photos: Path | None = None  # where the photos are kept (serve's --keep-photos)

    @property
    def digest(self) -> str:
        return self.records.digest

    @property
    def first(self) -> Any:
        return self.records.gradings[0]["time"] if self.records.gradings else None

    @property
    def last(self) -> Any:
        return self.summary.last

    @property
    def rejects(self) -> int:
        return self.summary.rejects

    def models(self) -> list[tuple[str, str, int]]:
        """(run, model SHA-256, photos), in the order first used."""
        counts: dict[tuple[str, str], int] = {}
        for g in self.records.gradings:
            key = (g["run"], g["model_sha256"])
            counts[key] = counts.get(key, 0) + 1
        return [(run, sha, n) for (run, sha), n in counts.items()]

    def corrections(self) -> list[dict[str, Any]]:
        """Every correction: who changed which photo from what to what, and when; by
        operator, then in the order made."""
        standing = {g["id"]: g for g in self.records.gradings}
        before = {i: g["grade"] for i, g in standing.items()}
        found = []
        for c in self.records.corrections:
            grading = standing[c["grading_id"]]
            found.append({"operator": c["operator"], "time": c["time"], "grading_id": grading["id"],
                          "photo": grading["photo"], "from": before[grading["id"]],
                          "to": c["grade"], "note": c["note"] or ""})  # fmt: skip
            before[grading["id"]] = c["grade"]
        return sorted(found, key=lambda c: c["operator"])  # stable: in the order made

    def times_label(self) -> str:
        return self.zone.label([self.first, self.last])


def certificate(
    db: str, name: str, zone: HouseZone | None = None, photos: Path | None = None
) -> Certificate:
    """Lot ``name``'s certificate from the records at URL ``db``, its summary, to-check list
    and close made from the very rows it hashes (:mod:`mangograde.records.certified`);
    ``photos``: where the photos are kept (named by their SHA-256, as ``serve
    --keep-photos`` keeps them), for small pictures of those to check."""
    if photos is not None and not photos.is_dir():
        raise SettingsError(
            f"--photos {photos} is not a folder: give the folder serve keeps "
            "the photos in (its --keep-photos), or leave --photos out."
        )
    records = read_lot(db, name)
    found = Certificate(summary_of(records), records, zone or house_zone(None))
    found.closed = closing_in(records)
    found.to_check = to_check_in(records)
    found.photos = photos
    if photos is not None:
        found.pictures = _pictures(photos, found.to_check)
    return found


def _pictures(folder: Path, rows: list[dict[str, Any]]) -> dict[int, str]:
    """Small pictures of the first :data:`THUMBNAILS` of ``rows`` kept in ``folder``, by
    grading id; made two at a time (Pillow decodes outside the interpreter's lock)."""
    from concurrent.futures import ThreadPoolExecutor

    pictures: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(rows), THUMBNAILS):
            batch = rows[start : start + THUMBNAILS]
            made = pool.map(lambda row: thumbnail(folder, row["sha256"]), batch)
            for row, picture in zip(batch, made, strict=True):
                if picture is not None and len(pictures) < THUMBNAILS:
                    pictures[row["grading_id"]] = picture
            if len(pictures) >= THUMBNAILS:
                break
    return pictures


def thumbnail(folder: Path, sha256: str) -> str | None:
    """A small JPEG of the photo kept as ``folder/SHA256.*``, as a ``data:`` URI (None:
    not kept there, or not readable). Only regular files, never through a link."""
    from PIL import Image, ImageOps

    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        return None
    for suffix in _KEPT_SUFFIXES:
        path = folder / f"{sha256}{suffix}"
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue
            with Image.open(path) as image:
                image.draft("RGB", (THUMB_PX, THUMB_PX))
                small = ImageOps.exif_transpose(image).convert("RGB")
                small.thumbnail((THUMB_PX, THUMB_PX))
                buffer = io.BytesIO()
                small.save(buffer, "JPEG", quality=70)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return None


def write_lot_report(
    db: str,
    name: str,
    path: Path,
    zone: HouseZone | None = None,
    photos: Path | None = None,
) -> tuple[Path, str]:
    """Lot ``name`` of the records at URL ``db`` to ``path``: ``.html`` (the certificate)
    or ``.csv`` (every grading with its row digest, the lot's digest in the last row); the
    file written and the lot's digest."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".csv"):
        raise SettingsError(f"--out {path}: give a .html or a .csv file (a PDF is not "
                            "written: print the HTML page to PDF from a browser).")  # fmt: skip
    zone = zone or house_zone(None)
    if suffix == ".csv":
        records = read_lot(db, name)  # the rows alone: a plain SQLite file without SQLAlchemy
        _write_csv(grading_rows(records), records, zone, path)
        return path, records.digest
    found = certificate(db, name, zone, photos)
    with atomic_open(path) as handle:
        handle.write(lot_html(found.summary, zone, found))
    return path, found.digest


# -- the CSV: a row a grading, with its digest ----------------------------------------------

_COLUMNS = ("id", "time", "fruit", "photo", "sha256", "size", "grade", "final_grade",
            "corrected_by", "check", "reason", "familiarity", "run", "model_sha256",
            "latency_ms")  # fmt: skip


def grading_rows(records: LotRecords) -> list[dict[str, Any]]:
    """Every grading as :meth:`mangograde.records.Store.gradings` gives it (its latest
    correction standing, ``p_GRADE`` columns), from the records already read."""
    latest = {c["grading_id"]: c for c in records.corrections}  # oldest first: the last stands
    rows = []
    for g in records.gradings:
        corrected = latest.get(g["id"])
        row = {k: g.get(k) for k in _COLUMNS}
        row.update(fruit=g["fruit"] or "", reason=g["reason"] or "",
                   final_grade=corrected["grade"] if corrected else g["grade"],
                   corrected_by=corrected["operator"] if corrected else "")  # fmt: skip
        rows.append(row | {f"p_{k}": v for k, v in g["probabilities"].items()})
    return rows


def _write_csv(rows: list[dict[str, Any]], records: LotRecords, zone: HouseZone,
               path: Path) -> Path:  # fmt: skip
    """Every grading a row, with its time in UTC and in the house's zone and its row
    digest; then the lot's own rows' digests and, last, the lot's digest. Names a
    spreadsheet would take for formulas (a fruit named ``=2+3``) are written as text
    (:mod:`mangograde.basics.csvcells`)."""
    local = f"time ({zone.name})"
    columns = ["id", "time (UTC)", local,
               *dict.fromkeys(k for row in rows for k in row if k not in ("id", "time")),
               "row_sha256"]  # fmt: skip
    times: dict[Any, tuple[str, str]] = {}  # a batch's photos share their time
    rejects = 0
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(text_row(columns))
        for row in rows:
            rejects += row.get("final_grade") == REJECT
            when = row["time"]
            if when not in times:
                times[when] = (UTC.show(when, seconds=True), zone.show(when, seconds=True))
            cells = row | {"time (UTC)": times[when][0], local: times[when][1],
                           "row_sha256": records.rows[f"grading {row['id']}"]}  # fmt: skip
            writer.writerow(text_row("" if cells.get(k) is None else cells[k] for k in columns))
        blank = [""] * (len(columns) - 2)
        writer.writerow([REJECTS_ROW, rejects, *blank])
        for key in _TRAILER:
            if key in records.rows:
                writer.writerow([key, *blank, records.rows[key]])
        writer.writerow([DIGEST_ROW, *blank, records.digest])
    return path


def read_certificate(path: Path) -> tuple[str, dict[str, str]]:
    """A certificate CSV's lot digest and row digests (key -> digest), checked: its rows
    must add up to the digest it states."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SettingsError(
            f"--certificate {path} cannot be read ({exc}): give the CSV that "
            "mangograde lots report LOT --out lot.csv wrote."
        ) from None
    head = [read_cell(c) for c in table[0]] if table else []
    if "id" not in head or "row_sha256" not in head:
        raise SettingsError(
            f"--certificate {path} is not a lot certificate: it has no id and row_sha256 "
            "columns. Give the CSV that mangograde lots report LOT --out lot.csv wrote."
        )
    at, digest_at = head.index("id"), head.index("row_sha256")
    rows: dict[str, str] = {}
    trailer: dict[str, str] = {}
    stated = None
    for number, row in enumerate(table[1:], start=2):
        if len(row) != len(head):
            raise SettingsError(
                f"--certificate {path}, line {number}: {len(row)} cells where "
                f"the header has {len(head)}; the file was cut or edited."
            )
        key, digest = read_cell(row[at]).strip(), read_cell(row[digest_at]).strip()
        if key == DIGEST_ROW:
            stated = check_digest(digest, f"--certificate {path}, line {number}: the digest")
        elif key == REJECTS_ROW:
            continue  # a count for the reader; the rows' own digests are what is checked
        elif key in _TRAILER:
            trailer[key] = digest
        elif key.isdigit():
            rows[f"grading {int(key)}"] = digest
        else:
            raise SettingsError(f"--certificate {path}, line {number}: {key[:40]!r} is no "
                                "grading id nor a row of the lot's own.")  # fmt: skip
    if stated is None:
        raise SettingsError(
            f"--certificate {path} states no lot digest (its last row, "
            f"{DIGEST_ROW!r}, is missing): the file was cut or edited."
        )
    rows |= {k: trailer[k] for k in _TRAILER if k in trailer}
    if lot_digest(rows) != stated:
        raise SettingsError(
            f"--certificate {path}: its row digests do not add up to the lot digest it states "
            f"({stated[:16]}...): the file was edited after it was written. Use the CSV as "
            "lots report wrote it, or verify with --digest alone."
        )
    return stated, rows


@dataclass
class Verdict:
    digest: str  # the lot's digest now
    matches: bool
    gradings: int
    differs: Differences | None = None  # with a certificate: which rows


def verify_lot(db: str, name: str, digest: str, certificate_csv: Path | None = None
               ) -> Verdict:  # fmt: skip
    """Whether lot ``name`` in the records at URL ``db`` still hashes to ``digest``; with
    the certificate's CSV, which rows were added, removed or changed since."""
    digest = check_digest(digest)
    certified = None
    if certificate_csv is not None:
        stated, certified = read_certificate(certificate_csv)
        if stated != digest:
            raise SettingsError(
                f"--certificate {certificate_csv} states the digest {stated}, not the --digest "
                f"given ({digest}): give the certificate that states that digest."
            )
    records = read_lot(db, name)
    now = records.digest
    found = Verdict(now, now == digest, len(records.gradings))
    if certified is not None:
        found.differs = differences(certified, records.rows)
    return found


# -- the HTML page --------------------------------------------------------------------------


def _table(head: list[str], rows: list[list[Any]], raw: int | None = None) -> str:
    """A table; column ``raw`` holds HTML made here (a picture), every other cell is text."""
    escape = html.escape
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr><td>" + "</td><td>".join([c if i == raw else escape(str(c))
                                       for i, c in enumerate(row)]) + "</td></tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{cells}</tr>{body}</table>"


def _share(n: int, total: int) -> str:
    return f"{n / max(1, total):.1%}"


def lot_html(summary: LotSummary, zone: HouseZone | None = None,
             found: Certificate | None = None) -> str:  # fmt: skip
    """The lot's report as one self-contained HTML page (no script); with ``found``, the
    whole certificate."""
    zone = zone or house_zone(None)
    s = summary
    grades = list(dict.fromkeys([*s.fruit_mix, *s.mix]))
    by_grade = [[g, s.fruit_mix.get(g, 0), _share(s.fruit_mix.get(g, 0), s.fruits_graded),
                 s.mix.get(g, 0), _share(s.mix.get(g, 0), s.graded)] for g in grades]  # fmt: skip
    checks = [[r, n, _share(n, s.gradings)] for r, n in s.checks.items()]
    fruits = [[f["fruit"], f["photos"], f["grade"], "yes" if f["check"] else "no", f["reason"],
               zone.show(f["time"])] for f in s.fruits]  # fmt: skip
    title = f"Lot {s.name}" if found is None else f"Lot {s.name}: certificate"
    times = zone.label([s.created, s.last]) if found is None else found.times_label()
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Times in {html.escape(times)}.</p>"]  # fmt: skip
    if found is None:
        last = "" if s.last is None else f", the last at {zone.show(s.last)}"
        parts.append(
            f"<p>Created {zone.show(s.created)}; {s.gradings} photos graded{last}; "
            f"not mangoes: {html.escape(rejects_line(s))}; {s.corrections} corrections; "
            f"{s.unfamiliar} photos unfamiliar.</p>"
        )
    else:
        parts.append(_facts(found))
    parts += [
        "<h2>Fruits by grade, and photos by grade (after corrections)</h2>",
        _table(["grade", "fruits", "share of fruits", "photos", "share of photos"], by_grade),
        "" if s.fruit_mix else "<p>No fruits: photos were graded one by one.</p>",
        f"<h2>Left to check by hand: {s.checks_left}</h2>",
        _table(["reason", "photos", "share"], checks) if checks else "<p>None.</p>",
    ]
    if found is not None:
        parts += [_corrections_html(found), _models_html(found), _to_check_html(found)]
    else:
        models = [[m, n] for m, n in s.models.items()]
        parts += ["<h2>Models used</h2>", _table(["run (model SHA-256)", "photos"], models)]
    parts += [
        "<h2>Fruits graded from several photos</h2>",
        _table(["fruit", "photos", "grade", "check", "reason", f"time ({zone.name})"], fruits)
        if fruits else "<p>None: photos were graded one by one.</p>",
    ]  # fmt: skip
    if found is not None:
        parts.append(_digest_html(found))
    style = ("body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:"
             "collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:left}code{word-break:break-all}img{display:block}")  # fmt: skip
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def _facts(found: Certificate) -> str:
    s, zone = found.summary, found.zone
    closed = found.closed
    status = (f"closed by {closed.operator} at {zone.show(closed.time)}" if closed is not None
              else "open (not closed)")  # fmt: skip
    rows = [
        ["lot", s.name],
        ["status", status],
        ["created", zone.show(s.created)],
        ["first grading", zone.show(found.first) or "none"],
        ["last grading", zone.show(found.last) or "none"],
        ["photos graded", s.gradings],
        ["fruits graded", s.n_fruits],
        ["left to check by hand", s.checks_left],
        ["rejects", f"{found.rejects} ({_share(found.rejects, s.gradings)})"],
        ["unfamiliar photos", f"{s.unfamiliar} ({_share(s.unfamiliar, s.gradings)})"],
        ["corrections", s.corrections],
    ]
    if s.fruit_rejects:  # fruits all of whose photos are rejects
        rows.insert(-2, ["rejected fruits", f"{s.fruit_rejects} of {s.n_fruits}"])
    return _table(["", ""], rows)


def _corrections_html(found: Certificate) -> str:
    rows = found.corrections()
    if not rows:
        return "<h2>Corrections by operator</h2><p>None.</p>"
    counts: dict[str, int] = {}
    for c in rows:
        counts[c["operator"]] = counts.get(c["operator"], 0) + 1
    who = ", ".join(f"{op} {n}" for op, n in counts.items())
    table = [[c["operator"], found.zone.show(c["time"]), c["grading_id"], c["photo"], c["from"],
              c["to"], c["note"]] for c in rows]  # fmt: skip
    return (f"<h2>Corrections by operator: {html.escape(who)}</h2>" + _table(
        ["operator", "when", "grading", "photo", "from", "to", "note"], table))  # fmt: skip


def _models_html(found: Certificate) -> str:
    rows = [[run, sha, n] for run, sha, n in found.models()]
    return "<h2>Models used</h2>" + _table(["run", "model SHA-256", "photos"], rows)


def _to_check_html(found: Certificate) -> str:
    rows = found.to_check
    head = f"<h2>Photos left to check by hand: {len(rows)}</h2>"
    if not rows:
        return head + "<p>None.</p>"
    if found.photos is None:
        note = ("<p>Give --photos (serve's --keep-photos folder) to see small pictures of "
                "them here.</p>")  # fmt: skip
    else:
        shown = len(found.pictures)
        note = (f"<p>Pictures of {shown} of them (at most {THUMBNAILS}, unfamiliar first, then "
                f"the least sure), from {html.escape(str(found.photos))}.</p>")  # fmt: skip
    table = []
    for r in rows:
        uri = found.pictures.get(r["grading_id"])
        alt = html.escape(f"Photo {r['photo']}", quote=True)
        picture = f"<img src='{uri}' alt='{alt}'>" if uri else ""
        table.append([picture, r["grading_id"], r["photo"], r["fruit"] or "", r["grade"],
                      r["reason"], found.zone.show(r["time"])])  # fmt: skip
    return (
        head
        + note
        + _table(
            ["picture", "grading", "photo", "fruit", "grade", "reason", "graded"], table, raw=0
        )
    )


def _digest_html(found: Certificate) -> str:
    name = found.summary.name.replace("'", "'\\''")
    return (
        "<h2>SHA-256 of the lot's records</h2>"
        f"<p><code>{found.digest}</code></p>"
        f"<p>Over its {len(found.records.gradings)} gradings with their corrections and "
        "fruits, the lot's own row and its closings. Check later that the lot still matches: "
        f"<code>mangograde lots verify '{html.escape(name)}' --digest {found.digest}</code> "
        "(with --certificate lot.csv, the CSV report, it names the rows that differ).</p>"
    )
