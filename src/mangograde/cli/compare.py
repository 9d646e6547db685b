"""``mangograde compare``: one HTML report of runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..basics.outputs import claim_file
from .options import BootOpt, BootSeedOpt, OverwriteOpt, QuietOpt, notices, out, progress_flag, warn


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
    seed: BootSeedOpt = 0,
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
