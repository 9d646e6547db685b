"""``mangograde evaluate``: a run or export measured on labelled photos."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..basics.atomic import write_text
from ..basics.errors import SettingsError
from ..basics.outputs import claim_file
from .options import (
    BootOpt,
    BootSeedOpt,
    DataOptions,
    FamiliarOpt,
    FoldOpt,
    GraderArg,
    OverwriteOpt,
    data_options,
    familiar_switch,
    notices,
    out,
    warn,
)
from .tables import (
    abstain_line,
    confidence_line,
    confusion_table,
    familiar_line,
    fruit_line,
    metrics_table,
    not_a_fruit_line,
)


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
    seed: BootSeedOpt = 0,
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
    inputs = [data, *(p for p in (opts.labels, opts.fruits_csv) if p)]
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
        saved.append(write_fruits(fruits_csv, graded.as_fruits(), graded.grades))
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
    if record.get("not_a_fruit", {}).get("n_not_a_fruit"):
        out.print(not_a_fruit_line(record["not_a_fruit"]))
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
