"""``mangograde db`` and ``mangograde lots``: the records database and its lots."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..basics.errors import SettingsError
from ..basics.outputs import claim_file
from .options import OverwriteOpt, out

db_app = typer.Typer(help="The records database: its schema.", no_args_is_help=True)
lots_app = typer.Typer(
    help="Lots in the records database: list, show, report, close, reopen, prune.",
    no_args_is_help=True,
)

UrlArg = Annotated[
    str,
    typer.Argument(
        metavar="URL",
        help="sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE.",
    ),
]
DbOpt = Annotated[
    str,
    typer.Option("--db", help="The records database (as serve's --db)."),
]
DEFAULT_DB = "sqlite:///mangograde-records.db"
LotArg = Annotated[str, typer.Argument(metavar="LOT", help="The lot's name.")]
ZoneOpt = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        metavar="ZONE",
        help="Show times in this zone, a zoneinfo name such as Europe/Madrid or UTC (the "
        "records keep UTC). Default: this machine's zone.",
    ),
]


def _store(url: str):  # type: ignore[no-untyped-def]
    """An existing records database, to read or prune (never created here)."""
    from ..records.store import open_existing

    return open_existing(url)


def db_upgrade(url: UrlArg) -> None:
    """Create the records schema in an empty database, or bring an older one up to date."""
    from ..records import Store

    before, after = Store(url).upgrade()
    if before == after:
        out.print(f"{escape(url)} is at schema {after}, the newest: nothing to do.")
    else:
        out.print(f"{escape(url)}: schema {before or '(empty)'} -> {after}.")


def lots_list(db: DbOpt = DEFAULT_DB, timezone_name: ZoneOpt = None) -> None:
    """Every lot: when it was created, photos graded, the last grading, the grade mix."""
    from ..basics.zones import house_zone
    from ..records.store import shown_name
    from ..workflows.lots import mix_line

    zone = house_zone(timezone_name)
    store = _store(db)
    names = store.lot_names()
    if not names:
        out.print(f"No lots yet in {escape(store.where)}.")
        return
    rows, times = [], []
    for name in names:
        s = store.summary(name)
        times += [s.created, s.last]
        rows.append([shown_name(name), zone.show(s.created), str(s.gradings), zone.show(s.last),
                     mix_line(s), str(s.corrections)])  # fmt: skip
    heads = ["lot", "created", "photos", "last", "grades", "corrections"]
    out.print(f"Times in {escape(zone.label(times))}.")
    # A lot's name is the value to type next: never cut. Where a table cannot hold every
    # name whole beside the dates and counts, each lot is a plain line instead.
    widest = max(len(r[0]) for r in rows)
    if widest + 3 * 16 + 7 + 10 + 12 > out.width:
        for row in rows:
            out.print(escape(f"{row[0]}: created {row[1]}, {row[2]} photos, last "
                             f"{row[3] or '-'}, {row[4]}, {row[5]} corrections"),
                      soft_wrap=True)  # fmt: skip
        return
    table = Table(*heads)
    table.columns[0].no_wrap = True
    for row in rows:
        table.add_row(escape(row[0]), *row[1:])
    out.print(table)


def lots_show(lot: LotArg, db: DbOpt = DEFAULT_DB, timezone_name: ZoneOpt = None) -> None:
    """One lot: its grade mix, rejects (not mangoes), checks by reason, corrections and the
    models used."""
    from ..basics.zones import house_zone
    from ..records.store import shown_name
    from ..workflows.lots import checks_line, fruit_mix_line, mix_line, rejects_line

    zone = house_zone(timezone_name)
    s = _store(db).summary(lot, detail=True)
    out.print(f"Lot {escape(shown_name(s.name))}: {s.gradings} photos graded, created "
              f"{zone.show(s.created)}, the last at {zone.show(s.last) or '-'} (times in "
              f"{escape(zone.label([s.created, s.last]))})")  # fmt: skip
    if s.fruit_mix:
        out.print(f"Fruits by grade: {escape(fruit_mix_line(s))}")
    out.print(f"Photos by grade (after corrections): {escape(mix_line(s))}")
    out.print(f"Not a mango (the operator's answer): {escape(rejects_line(s))}")
    out.print(f"Left to check by hand: {escape(checks_line(s))}")
    out.print(f"Corrections: {s.corrections}; unfamiliar photos: {s.unfamiliar}; fruits "
              f"graded from several photos: {s.n_fruits}")  # fmt: skip
    for model, n in s.models.items():
        out.print(f"Model {escape(model)}: {n} photos")
    if s.closed_by is not None and s.closed_at is not None:
        out.print(f"Closed by {escape(shown_name(s.closed_by))} at "
                  f"{zone.show(s.closed_at)} ({escape(zone.name)})")  # fmt: skip


ByOpt = Annotated[
    str, typer.Option("--by", help="Who does it: the operator's name, kept with the event.")
]


def lots_close(lot: LotArg, by: ByOpt, db: DbOpt = DEFAULT_DB) -> None:
    """Close a lot: from now on it refuses gradings and corrections (serve answers 409,
    naming who closed it and when) until it is reopened. Kept as a row, never an update."""
    from ..records import close_lot
    from ..records.store import shown_name

    event = close_lot(_store(db), lot, by)
    out.print(f"Closed lot {escape(shown_name(lot))}: by {escape(event.operator)} at "
              f"{event.time:%Y-%m-%d %H:%M:%S} (UTC). It refuses gradings and corrections "
              "until reopened (mangograde lots reopen LOT --by NAME --why TEXT).")  # fmt: skip


def lots_reopen(
    lot: LotArg,
    by: ByOpt,
    why: Annotated[
        str, typer.Option("--why", help="Why the lot is reopened, kept with the event.")
    ],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Reopen a closed lot, saying why: it takes gradings and corrections again. Kept as
    a row beside the close, never an update."""
    from ..records import reopen_lot
    from ..records.store import shown_name

    event = reopen_lot(_store(db), lot, by, why)
    out.print(f"Reopened lot {escape(shown_name(lot))}: by {escape(event.operator)} at "
              f"{event.time:%Y-%m-%d %H:%M:%S} (UTC), because: "
              f"{escape(event.why or '')}")  # fmt: skip


def lots_report(
    lot: LotArg,
    out_file: Annotated[Path, typer.Option("--out", help="lot.html or lot.csv to write.")],
    db: DbOpt = DEFAULT_DB,
    overwrite: OverwriteOpt = False,
    timezone_name: ZoneOpt = None,
    photos: Annotated[
        Path | None,
        typer.Option(
            "--photos",
            help="Where serve keeps the photos (its --keep-photos): small pictures of the "
            "photos left to check go into the HTML page.",
        ),
    ] = None,
) -> None:
    """Write a lot's certificate: .html (self-contained: fruits and photos by grade, checks
    left, rejects, unfamiliar photos, corrections by operator, models, first and last
    grading, who closed the lot, the SHA-256 of its records) or .csv (every grading with
    its latest correction and its row's SHA-256; the lot's SHA-256 in the last row)."""
    from ..basics.zones import house_zone
    from ..workflows.lots import write_lot_report

    zone = house_zone(timezone_name)
    claim_file(out_file, "--out", [photos] if photos else [], [], overwrite)
    written, digest = write_lot_report(db, lot, out_file, zone, photos)
    out.print(f"Wrote {escape(str(written))} (times in {escape(zone.name)})")
    out.print(f"SHA-256 of the lot's records: {digest}")


def lots_verify(
    lot: LotArg,
    digest: Annotated[
        str,
        typer.Option("--digest", metavar="HEX", help="The SHA-256 the lot's certificate states."),
    ],
    certificate: Annotated[
        Path | None,
        typer.Option(
            "--certificate",
            help="The certificate's CSV (lots report --out lot.csv): to name the rows that differ.",
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Say whether a lot's records still match its certificate's SHA-256; with the
    certificate's CSV, which gradings were added, removed or changed since. Exit status 0
    when it matches, 3 when it does not."""
    from ..records.digest import check_digest
    from ..records.store import shown_name
    from ..workflows.lots import verify_lot

    digest = check_digest(digest)  # before the records are opened
    verdict = verify_lot(db, lot, digest, certificate)
    name = escape(shown_name(lot))
    if verdict.matches:
        out.print(f"Lot {name} matches the certificate: its {verdict.gradings} gradings, "
                  "their corrections and fruits, and the lot's own rows hash to "
                  f"{verdict.digest}.")  # fmt: skip
        return
    out.print(f"[red]Lot {name} does not match the certificate[/]: its records now hash to "
              f"{verdict.digest}.")  # fmt: skip
    found = verdict.differs
    if found is None:
        out.print("Give --certificate lot.csv (the certificate's CSV) to see which rows differ.")
    else:
        for what, keys in (("changed", found.changed), ("added", found.added),
                           ("removed", found.removed)):  # fmt: skip
            if keys:
                shown = ", ".join(keys[:20]) + (
                    f" and {len(keys) - 20} more" if len(keys) > 20 else ""
                )
                out.print(f"{len(keys)} {what}: {escape(shown)}")
    raise typer.Exit(3)


def _utc(text: str, option: str) -> datetime:
    """A date typed by a user as a UTC instant (:func:`mangograde.basics.zones.parse_time`)."""
    from ..basics.zones import parse_time

    return parse_time(text, option)


def data_labels(
    db: UrlArg,
    photos: Annotated[
        Path, typer.Option("--photos", help="Where serve kept the photos (its --keep-photos).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="A new folder to write.")],
    lot: Annotated[
        list[str] | None, typer.Option("--lot", help="Only this lot (repeat for several).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only corrections from this date: YYYY-MM-DD[THH:MM] is UTC; an offset "
            "given is honoured (2026-12-08T00:00+14:00), and so is a zone name after a space "
            "(2026-12-08T00:00 Europe/Madrid).",
        ),
    ] = None,
    confirmed: Annotated[
        bool,
        typer.Option("--confirmed", help="Also the photos looked at and left as graded."),
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="competition (CSV) or label-studio (JSON tasks too).")
    ] = "competition",
) -> None:
    """The photos operators corrected, ready for train: images/, labels.csv (competition
    format) and groups.csv (lot and fruit); with --format label-studio, Label Studio's
    tasks with the grades as annotations. Photos answered "reject" (not a mango) go to
    reject/ and rejects.csv, never under a grade. Photos no longer kept are listed."""
    from ..records import labelled
    from ..workflows.labels import claim_labels_folder, write_labels

    if photos.is_dir():
        claim_labels_folder(out_dir, photos)  # before the records are read
    when = None if since is None else _utc(since, "--since")
    rows = labelled(_store(db), lot or [], when, confirmed)
    if not rows:
        which = "corrected or confirmed" if confirmed else "corrected"
        raise SettingsError(
            f"No {which} photos in {db}{' (lots: ' + ', '.join(lot) + ')' if lot else ''}"
            f"{' since ' + since if since else ''}: correct gradings on serve's page first"
            f"{'' if confirmed else ', or add --confirmed for those looked at and left as is'}."
        )
    written = write_labels(rows, photos, out_dir, fmt)
    if written.missing:
        shown = ", ".join(f"{r['photo']} (grading {r['grading_id']})" for r in written.missing[:10])
        out.print(f"[yellow]{len(written.missing)} corrected photos are no longer kept in "
                  f"{escape(str(photos))}[/] (listed in missing.csv): {escape(shown)}")  # fmt: skip
    mix = ", ".join(f"{g} {n}" for g, n in written.by_grade.items())
    out.print(f"Wrote {written.photos} photos ({escape(mix)}) to {escape(str(out_dir))}")
    if written.rejects:
        out.print(f"and {written.rejects} rejects (not a mango) to "
                  f"{escape(str(written.reject_folder))}, listed in rejects.csv: photos of what "
                  "to reject, never under a grade")  # fmt: skip
    if written.photos:
        out.print(f"Train on them: {escape(written.train_command())}")


def lots_prune(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Delete gradings older than this date: YYYY-MM-DD[THH:MM] is UTC; an "
            "offset given is honoured (2026-12-08T00:00+14:00), and so is a zone name after "
            "a space (2026-12-08T00:00 Europe/Madrid).",
        ),
    ],
    db: DbOpt = DEFAULT_DB,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete gradings before a date (with their corrections and fruits), and lots left
    empty."""
    when = _utc(before, "--before")
    store = _store(db)
    counts = store.prune(when, dry_run=True)
    if dry_run:
        out.print(f"Would delete {_pruned(counts)} graded before {_house_time(when)}.")
        return
    if not any(counts.values()):
        out.print(f"Nothing graded before {_house_time(when)}: nothing deleted.")
        return
    out.print(f"Deleting {_pruned(counts)} graded before {_house_time(when)}...")
    out.print(f"Deleted {_pruned(store.prune(when))}.")


def _pruned(counts: dict[str, int]) -> str:
    return (f"{counts['gradings']} gradings, {counts['corrections']} corrections, "
            f"{counts['fruits']} fruits and {counts['lots']} empty lots")  # fmt: skip


def _house_time(when: datetime) -> str:
    """``2026-12-08 00:00 +14:00 (2026-12-07 10:00 UTC)``: ``when`` in this machine's zone,
    with UTC beside it (UTC alone where the two are one)."""
    utc = f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"
    local = when.astimezone()
    offset = local.utcoffset()
    if not offset:
        return utc
    sign, minutes = ("-" if offset.total_seconds() < 0 else "+"), abs(offset.total_seconds()) // 60
    return f"{local:%Y-%m-%d %H:%M} {sign}{minutes // 60:02.0f}:{minutes % 60:02.0f} ({utc})"
