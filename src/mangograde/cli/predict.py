"""``mangograde predict``: new photos graded into a CSV (and fruits.csv, and the records)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..basics.errors import SettingsError, plural
from ..basics.limits import DEFAULT_MAX_PIXELS
from ..basics.outputs import claim_file
from .options import (
    CacheDirOpt,
    ExcludeOpt,
    FamiliarOpt,
    FoldOpt,
    FruitFoldersOpt,
    FruitGroupsOpt,
    GraderArg,
    IncludeOpt,
    MaxPixelsOpt,
    OverwriteOpt,
    QuietOpt,
    SampleOpt,
    SampleSeedOpt,
    SkipBadOpt,
    familiar_switch,
    fruits_asked,
    notices,
    out,
    progress_flag,
)
from .tables import familiar_line, not_a_fruit_line


def predict_command(
    run_dir: GraderArg,
    photos: Annotated[list[Path], typer.Argument(help="Photo files and/or folders of photos.")],
    out_file: Annotated[
        Path, typer.Option("--out", help="CSV to write: image_id,label,p_<grade>...")
    ] = Path("predictions.csv"),
    csv_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="probabilities: image_id,label and p_<grade> per grade; submission: exactly "
            "the competition's image_id,label.",
        ),
    ] = "probabilities",
    fold: FoldOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    overwrite: OverwriteOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    abstain: Annotated[
        float | None,
        typer.Option(
            "--abstain",
            min=0.0,
            max=1.0,
            help="Label a photo `check` (grade it by hand) when its top probability is below "
            "this, e.g. 0.8 (default: the run's abstain setting; 0 grades every photo); "
            "`evaluate` shows the accuracy each threshold gives.",
        ),
    ] = None,
    groups: FruitGroupsOpt = None,
    fruit_folders: FruitFoldersOpt = False,
    fruits_out: Annotated[
        Path | None,
        typer.Option(
            "--fruits-out",
            help="With --groups or --fruit-folders: the CSV of fruit grades (default "
            "fruits.csv beside --out).",
        ),
    ] = None,
    fruit_grade: Annotated[
        bool,
        typer.Option(
            "--fruit-grade",
            help="Label each photo with its fruit's grade (with --groups or --fruit-folders).",
        ),
    ] = False,
    familiar: FamiliarOpt = "on",
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    sample: SampleOpt = None,
    sample_seed: SampleSeedOpt = 0,
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            metavar="URL",
            help="Keep every grading in this records database (sqlite:///PATH or "
            "postgresql+psycopg://...), in one transaction; with --lot.",
        ),
    ] = None,
    lot: Annotated[
        str | None, typer.Option("--lot", help="The lot these photos belong to (--record).")
    ] = None,
) -> None:
    """Grade new photos (no labels needed) into the competition's submission format,
    with one probability column per grade. With --groups or --fruit-folders, each fruit
    is also graded from all of its photos (fruits.csv)."""
    from ..data import PhotoChoice
    from ..graders import fruit_grade_labels, open_grader
    from ..images import ImageCache, set_max_pixels
    from ..workflows.predict import familiar_record, not_a_fruit_record, predict

    if csv_format not in ("probabilities", "submission"):
        raise typer.BadParameter(
            f"--format must be probabilities or submission, not {csv_format!r}."
        )
    as_fruits = fruits_asked(groups, fruit_folders)
    if (fruit_grade or fruits_out is not None) and not as_fruits:
        flag = "--fruit-grade" if fruit_grade else "--fruits-out"
        raise SettingsError(
            f"{flag} needs to know which photos show one fruit: add --groups CSV or "
            "--fruit-folders."
        )
    if (record is None) != (lot is None):
        raise SettingsError("--record URL and --lot NAME go together: say where and which lot.")
    store = _records(record, lot) if record is not None else None
    inputs = [*photos, *([groups] if groups else [])]
    claim_file(out_file, "--out", inputs, [run_dir], overwrite)
    fruits_file = fruits_out or out_file.with_name("fruits.csv")
    if as_fruits:
        if fruits_file.resolve() == out_file.resolve():
            raise SettingsError(f"--fruits-out and --out are the same file ({out_file}).")
        claim_file(fruits_file, "--fruits-out", inputs, [run_dir], overwrite)
    set_max_pixels(max_pixels)
    predictor = familiar_switch(open_grader(run_dir, fold), familiar)
    choice = PhotoChoice(tuple(include or ()), tuple(exclude or ()), sample, sample_seed)
    graded, ids = predict(
        predictor, photos, out_file, csv_format == "probabilities", fruit_grade,
        fruits_file if as_fruits else None, None if store is None else (store, str(lot)),
        abstain, cache=ImageCache(cache_dir), skip_bad=skip_bad, progress=progress_flag(quiet),
        groups=groups, fruit_folders=fruit_folders, choice=choice,
    )  # fmt: skip
    if store is not None:
        out.print(f"Recorded {plural(len(ids), 'grading')} in lot {escape(str(lot))} "
                  f"({escape(store.where)})")  # fmt: skip
    notices(graded.notices)
    checks = graded.has_checks
    shares = _tally(graded.labels, graded.grades, checks)
    out.print(f"Graded {plural(len(graded.image_ids), 'photo')} ({shares})")
    if csv_format == "submission" and "check 0" not in shares and checks:
        out.print("The submission format holds grades only: the photos to check by hand are "
                  "graded there too; --format probabilities says which and why.")  # fmt: skip
    foreign = not_a_fruit_record(predictor, graded)
    if foreign is not None and foreign["n_not_a_fruit"]:
        out.print(not_a_fruit_line(foreign))
    familiar_found = familiar_record(predictor, graded)
    if familiar_found is not None:
        out.print(familiar_line(familiar_found))
    fruits = graded.fruit_grades
    if fruits is not None:
        mix = _tally(fruit_grade_labels(fruits, graded.grades), graded.grades, checks)
        out.print(f"Graded {plural(len(fruits.fruits), 'fruit')} ({mix}); wrote "
                  f"{escape(str(fruits_file))}")  # fmt: skip
    if graded.bad:
        out.print(
            f"[yellow]Skipped {plural(len(graded.bad), 'unreadable photo')}[/] (listed above)"
        )
    out.print(f"Wrote {escape(str(out_file))}")


def _tally(labels: list[str], grades: tuple[str, ...], checks: bool) -> str:
    """``A 3, B 1, C 0`` (and ``check N`` when some may be left to check by hand)."""
    counts = {g: 0 for g in grades} | ({"check": 0} if checks else {})
    for label in labels:
        counts[label] += 1
    return ", ".join(f"{g} {n}" for g, n in counts.items())


def _records(url: str, lot: str | None) -> Any:
    """The records database, checked before any photo is graded."""
    from ..records import check_name, open_store

    check_name(lot, "lot")
    return open_store(url)
