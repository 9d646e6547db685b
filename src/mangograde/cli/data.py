"""Commands about photos: data inspect / prepare / cache, synth and demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..basics.errors import MangogradeError, listing, plural
from .options import (
    AnnotationsOpt,
    CacheDirOpt,
    DataArg,
    DataOptions,
    QuietOpt,
    data_options,
    notices,
    out,
    progress_flag,
)

if TYPE_CHECKING:
    from ..workflows.inspect import Inspection

AUDIT_TRUSTED = 0.8  # below this accuracy, the runs' own mistakes swamp label errors


def _print_inspection(report: Inspection, skip_bad: bool) -> None:
    import numpy as np

    ds = report.dataset
    out.print(f"[bold]{escape(str(ds.root))}[/]  layout: [cyan]{ds.layout}[/]  photos: {len(ds)}")
    if ds.labelled:
        kind = "grade" if ds.ordered else "class"
        table = Table(kind, "photos", "share", title=f"Photos per {kind}")
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
    notices(ds.notices)
    if report.bad:
        colour = "yellow" if skip_bad else "red"
        out.print(f"[{colour}]Unreadable photos: {len(report.bad)}[/]")
        for bad in report.bad:
            out.print(escape(f"  {bad.path}: {bad.reason}"), highlight=False)
    else:
        out.print("Unreadable photos: none")


@data_options
def data_inspect(data: DataArg, opts: DataOptions) -> None:
    """Report a dataset's layout, photos per grade, sizes, duplicates, bad files and groups.

    Exits with status 1 when the dataset cannot be loaded or a photo cannot be read
    (unless --skip-bad).
    """
    from ..workflows.inspect import inspect_dataset

    dataset, _ = opts.open(data)
    report = inspect_dataset(dataset)
    _print_inspection(report, opts.skip_bad)
    if report.bad and not opts.skip_bad:
        raise MangogradeError(
            f"{plural(len(report.bad), 'photo')} cannot be read (listed above). Fix or "
            "remove them, or pass --skip-bad to leave them out."
        )


@data_options
def data_prepare(
    data: DataArg,
    opts: DataOptions,
    size: Annotated[int, typer.Option("--size", help="Resize photos to SIZE x SIZE.")] = 256,
    crop: Annotated[
        int | None, typer.Option("--crop", help="Then keep the central CROP x CROP.")
    ] = None,
) -> None:
    """Decode and resize every photo once into the cache, so training starts at once."""
    from ..images import Resize, ResizeCenterCrop, load_dataset_images

    dataset, _ = opts.open(data)
    geometry = Resize(size) if crop is None else ResizeCenterCrop(size, crop)
    cache = opts.cache
    kept, loaded = load_dataset_images(dataset, geometry, cache, opts.skip_bad, None, opts.progress)
    out.print(
        f"{len(kept)} photos ready at {geometry.key} in {loaded.seconds:.1f} s "
        f"({loaded.cache_hits} already cached) in {escape(str(cache.root))}"
    )
    notices(loaded.notices)


def data_cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete everything in the cache.")] = False,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Show where decoded photos are cached and how much space they take, or clear it."""
    from ..images import CACHE_MAX_ENV, ImageCache

    cache = ImageCache(cache_dir)
    if clear:
        freed = cache.clear()
        out.print(f"Cleared {escape(str(cache.root))}: {freed / 2**20:.1f} MiB freed")
        return
    photos, packs, size = cache.usage()
    out.print(
        f"{escape(str(cache.root))}: {photos} decoded photos ({packs} dataset packs), "
        f"{size / 2**20:.1f} MiB of at most {cache.max_bytes / 2**20:,.1f} MiB "
        f"(${CACHE_MAX_ENV}; the least recently used go first)"
    )


def synth_command(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write into.")],
    n: Annotated[int, typer.Option("--n", help="Number of photos.")] = 300,
    size: Annotated[int, typer.Option("--size", help="Photo width and height in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same photos.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace photos that synth drew there before.")
    ] = False,
) -> None:
    """Draw synthetic mango photos in the competition layout (train/, dev/, CSVs)."""
    from ..data.synth import synthesize

    synthesize(out_dir, n=n, size=size, seed=seed, overwrite=overwrite)
    out.print(
        f"Wrote {n} photos to {escape(str(out_dir))}: "
        "train/ + train.csv, dev/ + dev.csv, groups.csv"
    )


def demo_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's output.")] = Path(
        "demo-output"
    ),
    tiny: Annotated[
        bool, typer.Option("--tiny", help="A few photos and minimal training (seconds; for CI).")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole job on synthetic photos: draw them, train cnn-fast, svm-study and
    rf-study, grade new photos, and write the comparison report."""
    from ..images import ImageCache
    from ..workflows.demo import run_demo

    result = run_demo(
        out_dir,
        "tiny" if tiny else "full",
        seed,
        ImageCache(cache_dir),
        progress_flag(quiet),
        lambda line: out.print(escape(line)),
    )
    out.print(
        f"Done in {result.seconds:.0f} s. Open the report: [bold]{escape(str(result.report))}[/]"
    )


def data_audit(
    runs: Annotated[
        list[Path], typer.Argument(metavar="RUN...", help="Runs trained with --cv on the data.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CSV and HTML sheet.")],
    top: Annotated[int, typer.Option("--top", min=1, help="Photos on the contact sheet.")] = 60,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the outputs.")] = False,
) -> None:
    """Suspected label errors: photos whose given grade the runs' out-of-fold
    probabilities find least likely (cleanlab). Writes label_issues.csv and
    label_issues.html (photos with given and suggested grades). Changes no data."""
    from ..basics.outputs import claim_file
    from ..workflows.audit import audit

    for name in ("label_issues.csv", "label_issues.html"):
        claim_file(out_dir / name, "--out", [], list(runs), overwrite)
    found = audit(runs, out_dir, top)
    suspects = found.suspects
    everyone = sum(s.misgraded_by == len(runs) for s in suspects)
    nobody = sum(s.misgraded_by == 0 for s in suspects)
    out.print(
        f"{plural(len(suspects), 'suspected label error')} among {found.n_photos} photos "
        f"({len(suspects) / found.n_photos:.0%}): {everyone} misgraded by every run, {nobody} by "
        f"none (flagged for a low probability of their grade); the most suspect first in "
        f"{escape(str(out_dir / 'label_issues.csv'))} and "
        f"{escape(str(out_dir / 'label_issues.html'))}"
    )
    if found.accuracy < AUDIT_TRUSTED:
        out.print(
            f"[yellow]Warning:[/] the runs grade only {found.accuracy:.0%} of these "
            f"{found.n_photos} photos as labelled: many suspects are the runs' own mistakes, "
            "not label errors. Audit with runs that grade better."
        )


def data_familiar(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A run folder.")],
    photos: Annotated[list[Path], typer.Argument(help="Photo files and/or folders of photos.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CSV and histogram.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Label CSV (or Label Studio export) of these photos: accuracy on flagged ones.",
        ),
    ] = None,
    annotations: AnnotationsOpt = "latest",
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the outputs.")] = False,
) -> None:
    """Before the line starts: how unlike the run's training photos these photos are. The
    share flagged unfamiliar, the AUROC of the run's held-out photos against these, whether
    the batch drifted (p-value), and with --labels the accuracy on flagged and familiar
    photos. Writes familiarity.csv and familiarity.png."""
    import numpy as np

    from ..basics.outputs import claim_file
    from ..images import ImageCache
    from ..report.figures import familiarity_histogram
    from ..runs import open_predictor
    from ..workflows.familiar import check_familiar, write_scores
    from .tables import familiar_line

    inputs = [*photos, *([labels] if labels else [])]
    for name in ("familiarity.csv", "familiarity.png"):
        claim_file(out_dir / name, "--out", inputs, [run_dir], overwrite)
    predictor = open_predictor(run_dir)
    truth = None
    if labels is not None:
        from ..data import load_dataset
        from ..workflows.evaluate import match_grades

        folder = next((p for p in photos if p.is_dir()), photos[0].parent)
        from ..data.label_studio import check_annotations

        dataset = load_dataset(folder, labels, allow_single_grade=True,
                               annotations=check_annotations(annotations))  # fmt: skip
        dataset, matched = match_grades(predictor.grades, dataset)
        notices(matched)
        codes = dataset.labels.tolist()  # type: ignore[union-attr]
        truth = dict(zip(dataset.image_ids, codes, strict=True))
    report = check_familiar(
        predictor, photos, ImageCache(cache_dir), False, progress_flag(quiet), truth
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_scores(out_dir / "familiarity.csv", report)
    familiarity_histogram(report.reference, report.scores, report.record["threshold"],
                          out_dir / "familiarity.png")  # fmt: skip
    held = float(np.mean(report.reference > report.record["threshold"]))
    out.print(f"{plural(len(report.scores), 'photo')} checked; the run's held-out photos: "
              f"{held:.1%} flagged; AUROC (held-out against these) {report.auroc:.3f}")  # fmt: skip
    out.print(familiar_line(report.record))
    out.print(f"Wrote {escape(str(out_dir / 'familiarity.csv'))} and "
              f"{escape(str(out_dir / 'familiarity.png'))}")  # fmt: skip


def data_corrections(
    export: Annotated[
        Path,
        typer.Argument(
            metavar="EXPORT",
            help="Label Studio's JSON, JSON_MIN or CSV export of a project made from "
            "`data labels --format label-studio`.",
        ),
    ],
    db: Annotated[str, typer.Option("--db", help="The records database (as serve's --db).")],
    annotations: AnnotationsOpt = "latest",
) -> None:
    """Label Studio's grades back into the records: each annotated task's grade is appended
    as a correction of the grading its photo came from (operator: the annotator; note: the
    task and annotation), so the next `data labels` includes it. Run it again: nothing is
    added twice."""
    from ..workflows.corrections import append_corrections
    from .records import _store

    done = append_corrections(_store(db), export, annotations)
    notices(done.notices)
    if done.unknown:
        names = [c.task.where for c in done.unknown]
        them = "it" if len(names) == 1 else "them"
        out.print(f"[yellow]{plural(len(names), 'photo')} not in the records, nothing written "
                  f"for {them}:[/] {escape(listing(names))}")  # fmt: skip
    for chosen, why in done.refused:
        out.print(f"[yellow]Refused[/] {escape(chosen.task.where)}: {escape(why)}")
    if done.newer:
        names = [c.task.where for c in done.newer]
        out.print(f"[yellow]{plural(len(names), 'photo')} corrected in the records after the "
                  f"annotation, left as they stand:[/] {escape(listing(names))}")  # fmt: skip
    kept = len(done.done) + len(done.same)
    out.print(
        f"Appended {plural(len(done.added), 'correction')} from {escape(str(export))} "
        f"(Label Studio {done.format}) to {escape(db)}"
        + (f"; {kept} already stood" if kept else "")
        + (f"; {len(done.refused)} refused" if done.refused else "")
        + "."
    )
    for chosen, made in done.added:
        out.print(f"  grading {made.grading_id} ({escape(chosen.task.name)}): "
                  f"{escape(made.previous)} -> {escape(made.grade)} by "
                  f"{escape(made.operator)}")  # fmt: skip
