"""``mangograde export``: a run as a folder that grades without PyTorch or scikit-learn
(a CNN run as ONNX, a classical run as its arrays)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..basics.errors import SettingsError
from .options import AnnotationsOpt, FoldOpt, OverwriteOpt, QuietOpt, RunArg, out, progress_flag


def export_command(
    run_dir: RunArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the export into.")],
    export_format: Annotated[
        str, typer.Option("--format", help="onnx (a classical run: its arrays).")
    ] = "onnx",
    fold: FoldOpt = None,
    all_folds: Annotated[
        bool, typer.Option("--all-folds", help="Every fold model in one graph (the default).")
    ] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Static int8 quantisation (needs --calibration).")
    ] = False,
    calibration: Annotated[
        list[Path] | None,
        typer.Option("--calibration", help="Photos (files or folders) to calibrate int8 on."),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check", help="Grade folders (or photos with --labels) to report accuracy on."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Label CSV (or Label Studio export) of the --check photos."),
    ] = None,
    annotations: AnnotationsOpt = "latest",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17 or newer.")] = 18,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a run: a CNN run to ONNX (`model.onnx`, all folds in one graph, or --fold N),
    a colour, svm or rf run (or a stack of them) to its arrays (`model.npz`), with
    `grader.json`. `mangograde predict` and `serve` grade the export folder without
    PyTorch or scikit-learn (ONNX Runtime, or numpy)."""
    from ..data.label_studio import check_annotations
    from ..workflows.export import export_run

    if export_format != "onnx":
        raise SettingsError(f"--format {export_format!r}: only onnx is supported.")
    if all_folds and fold is not None:
        raise SettingsError("Give --fold N or --all-folds, not both.")
    result = export_run(
        run_dir, out_dir, fold, opset, int8, calibration, check, labels,
        overwrite=overwrite, progress=progress_flag(quiet),
        annotations=check_annotations(annotations),
    )  # fmt: skip
    manifest = result.manifest
    if manifest.get("engine") == "ensemble":
        labels = ", ".join(m["label"] for m in manifest["members"])
        out.print(
            f"Exported {escape(str(run_dir))} (the ensemble of {escape(labels)}, "
            f"{manifest['folds']} fold(s)) to {escape(str(result.out))}, each member's export "
            f"inside; it matches the run to {manifest['parity_max_abs_diff']:.1e}"
        )
    elif manifest.get("engine") == "numpy":
        out.print(
            f"Exported {escape(str(run_dir))} ({len(manifest['members'])} fold model(s), "
            f"{manifest['fold_rule']}) to {escape(str(result.out))} as arrays graded with "
            f"numpy; its probabilities match the run's to {manifest['parity_max_abs_diff']:.1e}"
        )
    else:
        out.print(
            f"Exported {escape(str(run_dir))} ({len(manifest['members'])} network(s), "
            f"{manifest['fold_rule']}, {manifest['precision']}) to {escape(str(result.out))}; "
            f"ONNX Runtime's fp32 graph matches PyTorch to {manifest['parity_max_abs_diff']:.1e}"
        )
    if "int8_agreement" in manifest:
        agreed = manifest["int8_agreement"]
        out.print(
            f"The int8 graph: probabilities up to {agreed['max_abs_diff']:.3f} from PyTorch's, "
            f"the same grade on {agreed['label_agreement']:.1%} of the {agreed['photos']} "
            f"{agreed['on']} photos."
        )
    for precision, accuracy in result.accuracy.items():
        out.print(f"Accuracy on {escape(str(check))}, {precision}: {accuracy:.3f}")
