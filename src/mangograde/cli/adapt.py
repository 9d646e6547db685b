"""``mangograde adapt``: a run moved to a new camera, orchard or variety."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..basics.config import parse_assignments
from ..basics.errors import SettingsError, plural
from ..basics.outputs import claim_folder
from .options import (
    AnnotationsOpt,
    CacheDirOpt,
    FoldOpt,
    FruitGroupsOpt,
    OverwriteOpt,
    QuietOpt,
    RunArg,
    notices,
    out,
    progress_flag,
)

if TYPE_CHECKING:
    from ..data import Dataset
    from ..runs.folder import Run


def _trained_on(parent: Run, paths: list[Path]) -> int:
    """How many of ``paths`` hold the same bytes as a photo the parent was trained on
    (only parent photos of a size some new photo has are read)."""
    import hashlib

    held, root = parent.held_out, parent.data_root
    if held is None or root is None or not root.is_dir():
        return 0

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    sizes = {p.stat().st_size for p in paths}
    new = {digest(p) for p in paths}
    seen = 0
    for image in held.image_ids:
        path = root / image
        if path.is_file() and path.stat().st_size in sizes and digest(path) in new:
            seen += 1
    return seen


def _inputs(photos: Path, parent: Run) -> list[Path]:
    """The folders of photos adapt reads: the new photos and the parent's own."""
    root = parent.data_root
    return [photos] + ([root] if root is not None and root.is_dir() else [])


def _labelled(
    photos: Path,
    labels: Path | None,
    groups: Path | None,
    grades: str | None,
    run_grades: Sequence[str],
    annotations: str = "latest",
) -> Dataset:
    """The new photos with their labels: named as the run's grades, as ``grades``, or A,B,C."""
    from ..basics.errors import DatasetError
    from ..data import load_dataset
    from ..data.label_studio import check_annotations

    how = {"allow_single_grade": True, "annotations": check_annotations(annotations)}
    if grades:
        names = tuple(g.strip() for g in grades.split(",") if g.strip())
        return load_dataset(photos, labels, groups, names, **how)
    try:
        return load_dataset(photos, labels, groups, tuple(run_grades), **how)
    except DatasetError:
        return load_dataset(photos, labels, groups, **how)


def adapt_command(
    run_dir: RunArg,
    photos: Annotated[Path, typer.Argument(help="The new photos: a folder (or grade folders).")],
    out_dir: Annotated[Path, typer.Option("--out", help="The adapted run's folder.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Label CSV of the new photos (image_id,label), or Label Studio's JSON, "
            "JSON_MIN or CSV export.",
        ),
    ] = None,
    annotations: AnnotationsOpt = "latest",
    groups: FruitGroupsOpt = None,
    unlabelled: Annotated[
        bool,
        typer.Option(
            "--unlabelled",
            help="No labels: re-estimate the networks' BatchNorm "
            "statistics on the photos, nothing else.",
        ),
    ] = False,  # fmt: skip
    cv: Annotated[
        int | None,
        typer.Option(
            "--cv",
            min=2,
            help="Measure on K parts of the new photos: adapt on K-1 parts, grade "
            "the other, beside the parent and a run trained from scratch (with labels for "
            "20 photos or more, --keep best measures on 5 parts without it).",
        ),
    ] = None,  # fmt: skip
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            help="best: with labels for 20 photos or more, measure by parts (--cv K, "
            "else 5) the adapted run against the family's recipe trained from scratch on "
            "the same photos and write the better (a tie keeps the adapted run); adapted "
            "or scratch: write that one.",
        ),
    ] = "best",  # fmt: skip
    grades: Annotated[
        str | None,
        typer.Option(
            "--grades",
            help="The labels' grade names best first, when they are not "
            "the run's nor A,B,C (e.g. Premium,Standard,Reject); with --regrade.",
        ),
    ] = None,  # fmt: skip
    regrade: Annotated[
        bool,
        typer.Option(
            "--regrade",
            help="Kept for older scripts: labels named otherwise than the "
            "run's grades are matched by rank, best first, without it (as evaluate does).",
        ),
    ] = False,  # fmt: skip
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="adapt.epochs, adapt.lr, adapt.body (frozen|train), "
            "adapt.weight (classical families), e.g. --set adapt.epochs=20.",
        ),
    ] = None,  # fmt: skip
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--reject-photos",
            help="A folder of photos of what this line must never grade (empty cups, "
            "trays), taught to the not-a-fruit check beside the parent's own.",
        ),
    ] = None,  # fmt: skip
    fold: FoldOpt = None,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Adapt a run to a new camera, orchard or variety with a few labelled photos, into a
    new run that names its parent: networks start from the run's weights (BatchNorm
    statistics measured on the new photos, then a short fine-tuning: a CNN all of it, a
    pretrained backbone its last layer); classical families refit on the run's photos and
    the new ones, weighted."""
    import numpy as np

    from ..data import find_photos
    from ..graders import is_export
    from ..images import ImageCache, load_images
    from ..runs import open_run
    from ..workflows.adapt import NewPhotos, adapt_run
    from ..workflows.evaluate import match_grades

    if is_export(run_dir):
        raise SettingsError(f"{run_dir} is an export: it holds no training state to adapt. "
                            "Adapt the run it was exported from, then export that.")  # fmt: skip
    if unlabelled and labels is not None:
        raise SettingsError("Give --labels CSV for the new photos, or --unlabelled, not both.")
    if unlabelled and rejects is not None:
        raise SettingsError(
            "--reject-photos teaches the not-a-fruit check, which --unlabelled leaves as it "
            "is (it re-estimates BatchNorm statistics alone): give --labels, or drop it."
        )
    parent = open_run(run_dir)
    claim_folder(out_dir, "--out", _inputs(photos, parent), runs=[run_dir])  # before any work
    sets = parse_assignments(assignments or [])
    unknown = sorted(set(sets) - {"adapt"})
    if unknown:
        raise SettingsError(f"adapt's --set takes adapt.* settings only, not {', '.join(unknown)}.")
    cache = ImageCache(cache_dir)
    progress = progress_flag(quiet)
    if unlabelled:
        paths, ids, found = find_photos([photos])
        notices(found)
        from ..data import Dataset

        dataset = Dataset(photos, "photos", tuple(ids), tuple(paths), ())
    else:
        dataset = _labelled(photos, labels, groups, grades, parent.grades, annotations)
        if not dataset.labelled:
            raise SettingsError(f"{photos} has no grades: give --labels CSV (or grade "
                                "folders), or --unlabelled to adapt the BatchNorm statistics "
                                "alone.")  # fmt: skip
        # Other names match the run's by rank, best first, saying so, as evaluate does
        # (--regrade, once needed for that, is kept for older scripts).
        dataset, matched = match_grades(parent.grades, dataset, parent.ordered)
        notices(matched)
    seen = _trained_on(parent, list(dataset.paths))
    if seen:
        out.print(f"[yellow]Warning:[/] {plural(seen, 'photo')} of these the parent was "
                  "trained on: adapting on them teaches it nothing new.")  # fmt: skip
    loaded = load_images(list(dataset.paths), parent.geometry(), cache, False, None, progress)
    kept = [dataset.image_ids[i] for i in loaded.kept]
    dataset = dataset.subset(np.asarray(loaded.kept)) if len(kept) != len(dataset) else dataset
    codes = None if unlabelled else np.asarray(dataset.labels)
    group_ids = None if dataset.groups is None else np.asarray(dataset.groups)
    new = NewPhotos(dataset, loaded.arrays, codes, group_ids)
    reject_images = None
    if rejects is not None:
        from ..data.reject_photos import reject_photos

        found_rejects = reject_photos(rejects, list(dataset.paths))
        reject_images = load_images(found_rejects, parent.geometry(), cache, False, None,
                                    progress).arrays  # fmt: skip
    started = time.perf_counter()
    result = adapt_run(run_dir, new, out_dir, sets.get("adapt", {}), cv, fold, cache,
                       progress, overwrite, keep, reject_images)  # fmt: skip
    took = time.perf_counter() - started
    notices(result.notices)
    if result.comparison:
        c = result.comparison
        table = Table("on the same held-out photos", "accuracy", "mean grade error",
                      title=f"{c['photos']} photos, {c['parts']} parts (grouped)")  # fmt: skip
        arms = (("parent", f"parent {parent.name} (unadapted)"), ("adapted", "adapted"),
                ("scratch", "trained from scratch"))  # fmt: skip
        for name, label in arms:
            kept = " (kept)" if name == result.kept and result.said else ""
            table.add_row(escape(label + kept), f"{c[name]['accuracy']:.3f}",
                          f"{c[name]['mae']:.3f}")  # fmt: skip
        out.print(table)
    lines = (result.said, _familiar_line((result.comparison or {}).get("familiar")),
             _check_line(result.not_a_fruit))  # fmt: skip
    for line in lines:
        if line:
            out.print(escape(line))
    what = "Adapted run" if result.kept == "adapted" else "Run trained from scratch"
    out.print(f"{what} written to {escape(str(out_dir))} (parent {escape(parent.name)}, "
              f"{plural(len(new.images), 'photo')}) in {_duration(took)}")  # fmt: skip


def _check_line(record: dict[str, Any] | None) -> str | None:
    """The adapted not-a-fruit check: held-out new photos it takes for not a mango."""
    if not record or record.get("method") is None:
        return None
    parent = f"the parent's check takes {record['parent_flags_new_photos']:.1%} of them"
    held = record.get("held_out_new_flagged")
    if held is None:
        said = f"Not-a-fruit check kept as the parent's: {record.get('note')} ({parent})"
    else:
        said = (f"Not-a-fruit check adapted: {held:.1%} of the held-out new photos taken "
                f"for not a mango ({parent})")  # fmt: skip
    rejects = record.get("reject_photos")
    if rejects:
        said += f"; {rejects['n']} reject photos"
    return said + "."


def _familiar_line(record: dict[str, Any] | None) -> str | None:
    """How many held-out new photos the familiarity adapted on the other parts flags,
    beside the parent."""
    if not record:
        return None
    found = record.get("adapted_held_out_new_flagged")
    parent = record.get("parent_flags_new_photos")
    own = record.get("parent_own_held_out_flagged")
    if found is None:
        return None
    said = f"Familiarity adapted: {found:.1%} of the held-out new photos flagged unfamiliar"
    if parent is not None:
        said += f" (the parent flags {parent:.1%} of them"
        said += f", and {own:.1%} of its own held-out photos)" if own is not None else ")"
    return said + "."


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"
