"""Commands that use trained runs: evaluate, predict, explain, compare."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..basics.atomic import write_text
from ..basics.errors import SettingsError, plural
from ..basics.outputs import claim_file
from ..images import DEFAULT_MAX_PIXELS, ImageCache, set_max_pixels
from .options import (
    CacheDirOpt,
    DataOptions,
    ExcludeOpt,
    FamiliarOpt,
    IncludeOpt,
    MaxPixelsOpt,
    OverwriteOpt,
    QuietOpt,
    SampleOpt,
    SampleSeedOpt,
    SkipBadOpt,
    data_options,
    familiar_switch,
    notices,
    out,
    progress_flag,
    warn,
)

RunArg = Annotated[
    Path, typer.Argument(metavar="RUN", help="A run folder written by `mangograde train`.")
]
GraderArg = Annotated[
    Path,
    typer.Argument(
        metavar="RUN",
        help="A run folder (`mangograde train`) or an export folder (`mangograde export`).",
    ),
]
FoldOpt = Annotated[
    int | None,
    typer.Option("--fold", help="Use only this fold's model (default: the mean of all folds)."),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the bootstrap (and of LIME, in compare).")
]
LimeSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of LIME's perturbed photos.")]
FruitGroupsOpt = Annotated[
    Path | None,
    typer.Option(
        "--groups",
        help="CSV of image,group saying which photos show one fruit (as train reads it): "
        "each fruit is graded from all its photos. A photo it does not name is a fruit of "
        "its own.",
    ),
]
FruitFoldersOpt = Annotated[
    bool,
    typer.Option(
        "--fruit-folders",
        help="The photos lie as PHOTOS/FRUIT_ID/*.jpg: each subfolder is one fruit.",
    ),
]
BootOpt = Annotated[
    int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals.")
]


def metrics_table(record: dict[str, Any], title: str) -> Table:
    from ..evaluation.metrics import METRIC_INFO, format_metric

    table = Table(title=title)
    for column in ("Metric", "Value", "95% interval"):
        table.add_column(column, justify="left" if column == "Metric" else "right")
    for name, value in record["metrics"].items():
        title, _, _, fmt = METRIC_INFO[name]
        interval = f"{format_metric(fmt, value['low'])} - {format_metric(fmt, value['high'])}"
        table.add_row(title, format_metric(fmt, value["value"]), interval)
    return table


def confusion_table(record: dict[str, Any]) -> Table:
    from ..evaluation.metrics import format_metric

    grades = record["grades"]
    # Many or long names: columns by number, so no name is cut to fit the terminal.
    numbered = len(grades) > 4 or max(map(len, grades)) > 12
    heads = [str(i + 1) for i in range(len(grades))] if numbered else list(grades)
    what = "grade" if record.get("ordered", True) else "class"
    table = Table(title=f"Confusion (rows: true {what}, columns: predicted)")
    table.add_column("true", overflow="fold")
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    table.add_column("recall", justify="right", no_wrap=True)
    for i, (grade, row) in enumerate(zip(grades, record["confusion"], strict=True)):
        recall = record["per_grade"][grade]["recall"]
        name = f"{i + 1} {grade}" if numbered else grade
        table.add_row(name, *map(str, row), format_metric("{:.3f}", recall))
    return table


def _evaluation_name(data: Path) -> str:
    """``parent-folder.json``: two ``test/`` folders of different sets do not collide."""
    folder = data.resolve()
    return (
        f"{folder.parent.name}-{folder.name}.json" if folder.parent.name else f"{folder.name}.json"
    )


@data_options
def evaluate_command(
    run_dir: GraderArg,
    data: Annotated[Path, typer.Argument(help="Labelled photos: grade folders or a folder.")],
    opts: DataOptions,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="JSON to write (default RUN/evaluations/DATA-NAME.json)."),
    ] = None,
    fold: FoldOpt = None,
    n_boot: BootOpt = 2000,
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    familiar: FamiliarOpt = "on",
) -> None:
    """Measure a trained run on any labelled photos: a table, and a JSON file beside a CSV
    of every photo's grades. With --groups the intervals resample whole fruits."""
    from ..evaluation.confidence import abstained
    from ..workflows.evaluate import evaluate_dataset
    from ..workflows.predict import write_fruits, write_submission

    run, predictor = _measured(run_dir, fold, familiar)
    target = out_file or run.evaluations / _evaluation_name(data)
    if target.suffix.lower() != ".json":
        raise SettingsError(
            f"--out {target}: give a .json file (the per-photo CSV is written beside it)."
        )
    # The run's own evaluations/ may be rewritten; anything else only with --overwrite.
    inputs = [data, *(p for p in (opts.labels, opts.groups_csv) if p)]
    diagram = target.with_suffix(".reliability.png")
    fruits_csv = target.with_suffix(".fruits.csv")
    for path in (target, target.with_suffix(".csv"), diagram, fruits_csv):
        claim_file(path, "--out", inputs, [run.path], overwrite or out_file is None)
    # A set of one grade can be scored (e.g. how many A photos stay A).
    dataset, record_data = opts.open(
        data, allow_single_grade=True, known=run.grades, unordered=not run.ordered
    )
    record, graded = evaluate_dataset(
        predictor,
        dataset,
        n_boot=n_boot,
        seed=seed,
        trained_on=run.data_root,
        ordered=run.ordered,
        **opts.loading,
    )
    record["run"] = str(run.path)
    record["data"] = record_data
    parent = _parent_on(run.run, dataset, fold, opts, seed) if run.run else None
    if parent is not None:
        record["parent"] = parent
    record["models"] = len(predictor.bundles)
    if predictor.rule.abstain is not None and graded.truth is not None:
        record["abstain"] = abstained(
            graded.truth, graded.predicted, graded.proba, predictor.rule.abstain
        )
    write_text(target, json.dumps(record, indent=2))
    write_submission(target.with_suffix(".csv"), graded)
    saved = [target, target.with_suffix(".csv")]
    if "fruit" in record:
        saved.append(write_fruits(fruits_csv, graded.grade_fruits(predictor.rule), graded.grades))
    notices(graded.notices)
    models = (
        "1 model"
        if len(predictor.bundles) == 1
        else f"mean of {len(predictor.bundles)} fold models"
    )
    out.print(metrics_table(record, f"{run.label} on {record['n_photos']} photos ({models})"))
    out.print(confusion_table(record))
    warn(record["warnings"])
    if "calibration" in record:
        from ..report.figures import reliability_diagram

        out.print(confidence_line(record))
        saved.append(reliability_diagram(record, diagram, run.label))
    if "abstain" in record:
        out.print(abstain_line(record["abstain"]))
    if "familiar" in record:
        out.print(familiar_line(record["familiar"]))
    if "fruit" in record:
        out.print(fruit_line(record["fruit"]["headline"], record["grades"]))
        if "abstain" in record["fruit"]["headline"]:
            out.print(abstain_line(record["fruit"]["headline"]["abstain"], "fruits"))
        warn(record["fruit"]["warnings"])
    if "parent" in record:
        before = record["parent"]["metrics"]["accuracy"]["value"]
        after = record["metrics"]["accuracy"]["value"]
        out.print(f"Its parent {escape(record['parent']['run'])} (unadapted) on the same "
                  f"photos: accuracy {before:.3f} (adapted {after:.3f}, "
                  f"{after - before:+.3f})")  # fmt: skip
    out.print(f"Saved {', '.join(escape(str(p)) for p in saved)}")


@dataclass(frozen=True)
class _Measured:
    """What `evaluate` measures: a run folder, or an export folder (``run`` None)."""

    path: Path
    label: str
    grades: tuple[str, ...]
    ordered: bool
    data_root: Path | None
    evaluations: Path  # where its evaluations go by default
    run: Any = None


def _measured(folder: Path, fold: int | None, familiar: str) -> tuple[_Measured, Any]:
    """The run or export in ``folder`` and its grader."""
    from ..graders import is_export, open_grader
    from ..runs import open_predictor, open_run

    if is_export(folder):
        grader = familiar_switch(open_grader(folder, fold), familiar)
        label = f"{folder.name} (export of {grader.name})"
        ordered = grader.manifest.get("labels", "ordered") != "unordered"
        where = Path("evaluations") / folder.name  # an export holds only what it lists
        return _Measured(folder, label, grader.grades, ordered, None, where), grader
    run = open_run(folder)
    measured = _Measured(
        run.path, run.label, run.grades, run.ordered, run.data_root, run.path / "evaluations", run
    )
    return measured, familiar_switch(open_predictor(run, fold), familiar)


def _parent_on(
    run: Any, dataset: Any, fold: int | None, opts: DataOptions, seed: int
) -> dict[str, Any] | None:
    """An adapted run's parent graded on the same photos (None: not adapted, or the
    parent is gone)."""
    from ..runs import RunError, open_predictor, open_run
    from ..workflows.evaluate import evaluate_dataset

    if run.parent_path is None:
        return None
    try:
        parent = open_run(run.parent_path)
        predictor = open_predictor(parent, fold)
    except (RunError, SettingsError):
        out.print(f"[yellow]Note:[/] the parent run {escape(str(run.parent_path))} cannot be "
                  "opened: the adapted run is measured alone.")  # fmt: skip
        return None
    found, _ = evaluate_dataset(predictor, dataset, n_boot=200, seed=seed, ordered=run.ordered,
                                **opts.loading)  # fmt: skip
    return {"run": parent.name, "path": str(parent.path), "metrics": found["metrics"]}


def _as_fruits(groups: Path | None, fruit_folders: bool) -> bool:
    """Whether the photos are graded as fruits; one way of saying which, not both."""
    if groups is not None and fruit_folders:
        raise SettingsError("Give --groups or --fruit-folders, not both.")
    return groups is not None or fruit_folders


def _tally(labels: list[str], grades: tuple[str, ...], checks: bool) -> str:
    """``A 3, B 1, C 0`` (and ``check N`` when some may be left to check by hand)."""
    counts = {g: 0 for g in grades} | ({"check": 0} if checks else {})
    for label in labels:
        counts[label] += 1
    return ", ".join(f"{g} {n}" for g, n in counts.items())


def abstain_line(record: dict[str, Any], what: str = "photos") -> str:
    """What the run's abstain setting leaves to check by hand, and the accuracy on the rest."""
    line = (f"Check by hand below p = {record['threshold']:.2f}: {record['n_check']} {what} "
            f"({1 - record['coverage']:.0%})")  # fmt: skip
    if record["accuracy"] is None:
        return f"{line}; none graded."
    return f"{line}; accuracy {record['accuracy']:.3f} on the {record['coverage']:.0%} graded."


def familiar_line(found: dict[str, Any]) -> str:
    """What the run's familiarity model says of a batch of photos, in one line."""
    line = (f"Unfamiliar to the run: {found['n_unfamiliar']} photos "
            f"({found['share_unfamiliar']:.0%})")  # fmt: skip
    if found["drift_p"] is not None:
        line += f"; drift p = {found['drift_p']:.2g}"
        if found["drift_p"] < 0.01:
            line += " ([yellow]these photos are not like its training photos[/])"
    sides = [(k, found[f"accuracy_{k}"]) for k in ("familiar", "unfamiliar")]
    shown = [f"{k} {a:.3f}" for k, a in sides if a is not None]
    return line + (f"; accuracy {', '.join(shown)}" if shown else "")


def fruit_line(found: dict[str, Any], grades: list[str]) -> str:
    """The fruit level in one line, from a :func:`~mangograde.evaluation.headline` record."""
    value, low, high = (found["accuracy"][k] for k in ("value", "low", "high"))
    line = (f"Fruit level ({found['rule']} of each fruit's photos, {found['n']} fruits): "
            f"accuracy {value:.3f} [{low:.3f}, {high:.3f}]")  # fmt: skip
    if found.get("qwk") is not None:
        line += (
            f", QWK {found['qwk']:.3f}, {grades[0]}<->{grades[-1]} errors {found['extreme_errors']}"
        )
    if found.get("ece") is not None:
        line += f", ECE {found['ece']:.3f}"
    if found.get("accuracy_at_90") is not None:
        line += (f"; accuracy {found['accuracy_at_90']:.3f} on the surest 90% of fruits, 99% "
                 f"accuracy on {found['coverage_at_99']:.0%} of them "
                 f"({round(found['coverage_at_99'] * found['n'])} fruits)")  # fmt: skip
    return line


def confidence_line(record: dict[str, Any]) -> str:
    """ECE, and how much can be graded at 99% accuracy leaving the rest to check by hand."""
    ece = record["calibration"]["ece"]
    reach = record["coverage"]["reaches_target"]
    at_90 = record["coverage"]["accuracy_at_90"]
    n = record["n_photos"]
    line = (
        f"Calibration: ECE {ece:.3f} ({n} photos). Most confident first: accuracy {at_90:.3f} "
        f"on 90% of them ({round(0.9 * n)} photos)"
    )
    if reach:
        return (f"{line}; 99% accuracy on {reach['coverage']:.0%} of them "
                f"({round(reach['coverage'] * n)} photos; top probability at least "
                f"{reach['threshold']:.2f}, the rest checked by hand).")  # fmt: skip
    return f"{line}; 99% accuracy is not reached at any share."


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
    from dataclasses import replace

    from ..data import PhotoChoice
    from ..graders import open_grader
    from ..workflows.predict import (
        familiar_record,
        fruit_grade_labels,
        grade_photos,
        write_fruits,
        write_submission,
    )

    if csv_format not in ("probabilities", "submission"):
        raise typer.BadParameter(
            f"--format must be probabilities or submission, not {csv_format!r}."
        )
    as_fruits = _as_fruits(groups, fruit_folders)
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
    progress = progress_flag(quiet)
    choice = PhotoChoice(tuple(include or ()), tuple(exclude or ()), sample, sample_seed)
    graded = grade_photos(predictor, photos, ImageCache(cache_dir), skip_bad, progress,
                          groups, fruit_folders, choice)  # fmt: skip
    abstain = predictor.rule.abstain if abstain is None else abstain
    fruits = graded.grade_fruits(replace(predictor.rule, abstain=abstain)) if as_fruits else None
    if store is not None:
        from ..workflows.record import record_graded

        assert lot is not None
        ids = record_graded(store, lot, predictor, graded, abstain, fruits)
        out.print(f"Recorded {plural(len(ids), 'grading')} in lot {escape(lot)} "
                  f"({escape(store.where)})")  # fmt: skip
    write_submission(out_file, graded, csv_format == "probabilities", abstain,
                     fruits if fruit_grade else None)  # fmt: skip
    if fruits is not None:
        write_fruits(fruits_file, fruits, graded.grades)
    notices(graded.notices)
    checks = abstain is not None or graded.unfamiliar is not None
    shares = _tally(graded.labels(abstain), graded.grades, checks)
    out.print(f"Graded {plural(len(graded.image_ids), 'photo')} ({shares})")
    if csv_format == "submission" and "check 0" not in shares and checks:
        out.print("The submission format holds grades only: the photos to check by hand are "
                  "graded there too; --format probabilities says which and why.")  # fmt: skip
    familiar_found = familiar_record(predictor, graded)
    if familiar_found is not None:
        out.print(familiar_line(familiar_found))
    if fruits is not None:
        mix = _tally(fruit_grade_labels(fruits, graded.grades), graded.grades, checks)
        out.print(f"Graded {plural(len(fruits.fruits), 'fruit')} ({mix}); wrote "
                  f"{escape(str(fruits_file))}")  # fmt: skip
    if graded.bad:
        out.print(
            f"[yellow]Skipped {plural(len(graded.bad), 'unreadable photo')}[/] (listed above)"
        )
    out.print(f"Wrote {escape(str(out_file))}")


def _records(url: str, lot: str | None) -> Any:
    """The records database, checked before any photo is graded."""
    from ..records import check_name, open_store

    check_name(lot, "lot")
    return open_store(url)


def explain_command(
    run_dir: RunArg,
    photos: Annotated[
        list[Path],
        typer.Argument(
            metavar="PHOTO...",
            help="The photo to explain; with --groups or --fruit-folders, the photos (or "
            "folders) of one fruit.",
        ),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="PNG to write.")],
    method: Annotated[
        str, typer.Option("--method", help="lime (any model) or gradcam (CNN runs).")
    ] = "lime",
    grade: Annotated[
        str | None,
        typer.Option(
            "--grade", help="Explain this grade (default: the predicted, or the fruit's)."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", help="LIME: perturbed photos to grade (more: steadier).")
    ] = 500,
    fold: FoldOpt = None,
    seed: LimeSeedOpt = 0,
    quiet: QuietOpt = False,
    overwrite: OverwriteOpt = False,
    groups: FruitGroupsOpt = None,
    fruit_folders: FruitFoldersOpt = False,
    fruit: Annotated[
        str | None,
        typer.Option(
            "--fruit", help="With --groups: explain this fruit's photos among those given."
        ),
    ] = None,
) -> None:
    """Show a photo beside why the run graded it so: LIME's supporting superpixels in
    green, or the CNN's Grad-CAM map. With --groups or --fruit-folders, every photo of one
    fruit, under the fruit's grade."""
    from ..data import find_photos
    from ..explain import explain
    from ..images import load_images
    from ..report.figures import explanation_figure, fruit_explanation_figure
    from ..runs import open_predictor

    if samples < 10:
        raise typer.BadParameter(f"--samples must be at least 10, got {samples}.")
    as_fruit = _as_fruits(groups, fruit_folders)
    if fruit is not None and groups is None:
        raise SettingsError("--fruit names a fruit of the --groups CSV: add --groups.")
    inputs = [*photos, *([groups] if groups else [])]
    claim_file(out_file, "--out", inputs, [run_dir], overwrite)
    paths, ids, _ = find_photos(photos)
    if not as_fruit:
        if len(paths) != 1:
            raise typer.BadParameter(
                f"{', '.join(map(str, photos))} hold {len(paths)} photos; give one photo file "
                "(or the photos of one fruit with --groups or --fruit-folders)."
            )
        predictor = open_predictor(run_dir, fold)
        image = load_images(paths, predictor.geometry).arrays[0]
        found = explain(predictor, image, method, grade, samples, seed, progress_flag(quiet))
        explanation_figure(found, out_file)
        odds = ", ".join(f"{g} {p:.2f}" for g, p in found.proba.items())
        out.print(f"Predicted {found.predicted} ({odds}); explained grade {found.grade}")
        out.print(f"Wrote {escape(str(out_file))}")
        return
    name, paths, ids = _one_fruit(photos, paths, ids, groups, fruit)
    predictor = open_predictor(run_dir, fold)
    progress = progress_flag(quiet)
    images = load_images(paths, predictor.geometry, progress=progress).arrays
    fruits, _, _ = predictor.grade_fruits(images, [name] * len(images))
    fruit_grade = predictor.grades[fruits.predicted[0]]
    found = [explain(predictor, image, method, grade or fruit_grade, samples, seed, progress)
             for image in images]  # fmt: skip
    odds = ", ".join(f"{g} {p:.2f}" for g, p in zip(predictor.grades, fruits.proba[0], strict=True))
    title = (f"Fruit {name}: grade {fruit_grade} ({predictor.rule.fruit} of {len(images)} "
             f"photos: {odds})")  # fmt: skip
    fruit_explanation_figure(found, ids, title, out_file)
    out.print(f"{title}; explained grade {found[0].grade} in each photo")
    out.print(f"Wrote {escape(str(out_file))}")


def _one_fruit(
    photos: list[Path],
    paths: list[Path],
    ids: list[str],
    groups: Path | None,
    fruit: str | None,
) -> tuple[str, list[Path], list[str]]:
    """The one fruit the given photos show, and its photos (refused when they show several)."""
    from ..data.fruit_ids import fruits_from_csv, fruits_from_folders

    if groups is not None:
        fruit_ids, _ = fruits_from_csv(paths, ids, groups)
    else:
        fruit_ids, _ = fruits_from_folders(photos, paths)
    if fruit is not None:
        keep = [i for i, f in enumerate(fruit_ids) if f == fruit]
        if not keep:
            raise SettingsError(f"No photo given is of fruit {fruit!r} in {groups}.")
        return fruit, [paths[i] for i in keep], [ids[i] for i in keep]
    named = sorted({f or f"{ids[i]} (no fruit id)" for i, f in enumerate(fruit_ids)})
    if len(named) != 1 or not fruit_ids[0]:
        raise SettingsError(
            f"These photos show {len(named)} fruits ({', '.join(named[:5])}"
            f"{', ...' if len(named) > 5 else ''}): give the photos of one fruit"
            + (", or pick one with --fruit." if groups is not None else ".")
        )
    return fruit_ids[0], paths, ids


def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "report.html"
    ),
    mistakes: Annotated[
        int, typer.Option("--mistakes", help="Most confident mistakes explained per run.")
    ] = 3,
    samples: Annotated[
        int, typer.Option("--samples", help="LIME samples per explained mistake.")
    ] = 200,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="Explain mistakes with auto (Grad-CAM for CNNs, else LIME), lime "
            "(as the study did for its CNN) or gradcam.",
        ),
    ] = "auto",
    study: Annotated[
        bool | None,
        typer.Option(
            "--study/--no-study",
            help="Show the study's numbers (default: for photos in the competition's layout, "
            "a label CSV of grades A/B/C, that `synth` did not draw).",
        ),
    ] = None,
    n_boot: BootOpt = 2000,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write one self-contained HTML report comparing runs side by side."""
    from ..evaluation.metrics import format_metric
    from ..report.html import render_report
    from ..workflows.compare import compare_runs

    if mistakes > 0 and samples < 10:
        raise typer.BadParameter(f"--samples must be at least 10, got {samples}.")
    claim_file(out_file, "--out", [], runs, overwrite)
    comparison = compare_runs(
        runs, mistakes, samples, n_boot, seed, study, progress_flag(quiet), method
    )
    render_report(comparison, out_file)
    for summary in comparison.runs:
        accuracy = summary.evaluation["metrics"]["accuracy"]
        low, high = (format_metric("{:.3f}", accuracy[k]) for k in ("low", "high"))
        value = format_metric("{:.3f}", accuracy["value"])
        line = f"{escape(summary.label)}: accuracy {value} [{low}, {high}]"
        if summary.fruit is not None:
            fruit = summary.fruit["metrics"]["accuracy"]
            line += (f"; {summary.fruit['n_photos']} fruits: accuracy "
                     f"{format_metric('{:.3f}', fruit['value'])}")  # fmt: skip
        out.print(line)
    notices(comparison.notices)
    for summary in comparison.runs:
        warn([f"{summary.label}: {w}" for w in summary.evaluation["warnings"]])
    out.print(f"Report written to {escape(str(out_file))}")
