"""The ``mangograde`` command line. Each command is a thin call into the modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .data import load_dataset
from .errors import MangogradeError, listing, plural
from .images import ImageCache, Resize, ResizeCenterCrop, load_dataset_images
from .inspection import Inspection, inspect_dataset
from .synth import synthesize

app = typer.Typer(
    name="mangograde",
    help="Grade harvested mangoes (A > B > C) from photos, and compare models honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Look at a dataset before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(soft_wrap=True)  # long paths stay whole, for copying
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., object])


def user_errors(command: F) -> F:
    """Turn a MangogradeError into one clear message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MangogradeError as exc:
            if _state["debug"]:
                raise
            err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        out.print(f"mangograde {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Grade harvested mangoes (A > B > C) from photos, and compare models honestly."""
    _state["debug"] = debug


LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels", help="Label CSV (image_id,label; header optional; UTF-8, BOM or Big5)."
    ),
]
GroupsOpt = Annotated[
    Path | None,
    typer.Option("--groups", help="CSV mapping photos to fruits (image,group), kept together."),
]
GradesOpt = Annotated[
    str | None,
    typer.Option(
        "--grades",
        help="Grade names best-first, comma-separated, e.g. Extra_Class,Class_I,Class_II.",
    ),
]
SkipBadOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad", help="Leave unreadable photos out (each is listed) instead of stopping."
    ),
]


def parse_grades(grades: str | None) -> tuple[str, ...] | None:
    return tuple(g.strip() for g in grades.split(",")) if grades else None


def _print_inspection(report: Inspection, skip_bad: bool) -> None:
    ds = report.dataset
    out.print(f"[bold]{escape(str(ds.root))}[/]  layout: [cyan]{ds.layout}[/]  photos: {len(ds)}")
    if ds.labelled:
        table = Table("grade", "photos", "share", title="Photos per grade")
        counts = ds.grade_counts()
        for grade, n in counts.items():
            table.add_row(escape(grade), str(n), f"{n / max(len(ds), 1):.1%}")
        out.print(table)
    if report.sizes:
        widths = np.array([w for (w, _), n in report.sizes.items() for _ in range(n)])
        heights = np.array([h for (_, h), n in report.sizes.items() for _ in range(n)])
        common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in report.sizes.most_common(3))
        out.print(
            f"Sizes: width {widths.min()}-{widths.max()} (median {np.median(widths):.0f}), "
            f"height {heights.min()}-{heights.max()} (median {np.median(heights):.0f}); "
            f"most common: {common}"
        )
    if report.groups:
        g = report.groups
        per_grade = escape(", ".join(f"{k} {v}" for k, v in g.per_grade.items()))
        lo, med, hi = g.photos_per_group
        out.print(
            f"Groups: {g.n_groups} ({per_grade}); photos per group {lo}-{hi} (median {med:g})"
        )
        if g.mixed:
            out.print(
                f"[yellow]Warning:[/] {plural(len(g.mixed), 'group')} hold photos of more than "
                f"one grade: {escape(listing(g.mixed))}"
            )
    else:
        out.print("Groups: none given; every photo counts as its own fruit (--groups CSV).")
    duplicates = listing([" = ".join(d) for d in report.duplicates], 5)
    out.print(f"Duplicate photos (same content): {len(report.duplicates) or 'none'}", end="")
    out.print(f": {escape(duplicates)}" if duplicates else "")
    if report.conflicting_duplicates:
        shown = listing([" = ".join(d) for d in report.conflicting_duplicates], 5)
        out.print(f"[yellow]Warning:[/] identical photos with different grades: {escape(shown)}")
    for notice in ds.notices:
        out.print(f"[yellow]Note:[/] {escape(notice)}")
    if report.bad:
        colour = "yellow" if skip_bad else "red"
        out.print(f"[{colour}]Unreadable photos: {len(report.bad)}[/]")
        for bad in report.bad:
            out.print(escape(f"  {bad.path}: {bad.reason}"), highlight=False)
    else:
        out.print("Unreadable photos: none")


@data_app.command("inspect")
@user_errors
def data_inspect(
    data: Annotated[Path, typer.Argument(help="Folder of photos, or of grade folders.")],
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    skip_bad: SkipBadOpt = False,
) -> None:
    """Report a dataset's layout, photos per grade, sizes, duplicates, bad files and groups.

    Exits with status 1 when the dataset cannot be loaded or a photo cannot be read
    (unless --skip-bad).
    """
    dataset = load_dataset(data, labels=labels, groups=groups, grades=parse_grades(grades))
    report = inspect_dataset(dataset)
    _print_inspection(report, skip_bad)
    if report.bad and not skip_bad:
        raise MangogradeError(
            f"{plural(len(report.bad), 'photo')} cannot be read (listed above). Fix or "
            "remove them, or pass --skip-bad to leave them out."
        )


CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where decoded photos are cached (default: $MANGOGRADE_CACHE_DIR or "
        "~/.cache/mangograde).",
    ),
]


@data_app.command("prepare")
@user_errors
def data_prepare(
    data: Annotated[Path, typer.Argument(help="Folder of photos, or of grade folders.")],
    size: Annotated[int, typer.Option("--size", help="Resize photos to SIZE x SIZE.")] = 256,
    crop: Annotated[
        int | None, typer.Option("--crop", help="Then keep the central CROP x CROP.")
    ] = None,
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Decode and resize every photo once into the cache, so training starts at once."""
    dataset = load_dataset(data, labels=labels, groups=groups, grades=parse_grades(grades))
    geometry = Resize(size) if crop is None else ResizeCenterCrop(size, crop)
    cache = ImageCache(cache_dir)
    kept, loaded = load_dataset_images(dataset, geometry, cache, skip_bad=skip_bad)
    out.print(
        f"{len(kept)} photos ready at {geometry.key} in {loaded.seconds:.1f} s "
        f"({loaded.cache_hits} already cached) in {escape(str(cache.root))}"
    )
    for notice in loaded.notices:
        out.print(f"[yellow]Note:[/] {escape(notice)}")


@data_app.command("cache")
@user_errors
def data_cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete everything in the cache.")] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Show where decoded photos are cached and how much space they take, or clear it."""
    cache = ImageCache(cache_dir)
    if clear:
        freed = cache.clear()
        out.print(f"Cleared {escape(str(cache.root))}: {freed / 2**20:.1f} MiB freed")
        return
    entries, packs, size = cache.usage()
    out.print(
        f"{escape(str(cache.root))}: {entries} photo entries, {packs} dataset packs, "
        f"{size / 2**20:.1f} MiB"
    )


@app.command("synth")
@user_errors
def synth_command(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write into.")],
    n: Annotated[int, typer.Option("--n", help="Number of photos.")] = 300,
    size: Annotated[int, typer.Option("--size", help="Photo width and height in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same photos.")] = 0,
) -> None:
    """Draw synthetic mango photos in the competition layout (train/, dev/, CSVs)."""
    synthesize(out_dir, n=n, size=size, seed=seed)
    out.print(
        f"Wrote {n} photos to {escape(str(out_dir))}: "
        "train/ + train.csv, dev/ + dev.csv, groups.csv"
    )


@app.command("demo")
@user_errors
def demo_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's output.")] = Path(
        "demo-output"
    ),
    tiny: Annotated[
        bool, typer.Option("--tiny", help="A few photos and minimal training (seconds; for CI).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache_dir: CacheDirOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """The whole job on synthetic photos: draw them, train cnn-fast, svm-study and
    rf-study, grade new photos, and write the comparison report."""
    from .demo import run_demo

    result = run_demo(
        out_dir,
        "tiny" if tiny else "full",
        seed,
        ImageCache(cache_dir),
        False if quiet else None,
        lambda line: out.print(escape(line)),
    )
    out.print(
        f"Done in {result.seconds:.0f} s. Open the report: [bold]{escape(str(result.report))}[/]"
    )


def main() -> None:
    app()


from . import cli_eval, cli_models  # noqa: E402,F401  (register their commands)
