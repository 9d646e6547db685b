"""``mangograde ensemble``: runs trained on the same photos and folds, as one run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .options import OutDirOpt, OverwriteOpt, QuietOpt, notices, out, progress_flag
from .tables import held_out_lines


def ensemble_command(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN",
            help="Two or more run folders trained on the same photos, folds (--cv, --seed), "
            "fruit groups and grades, e.g. colour-texture and cnn-fast.",
        ),
    ],
    out_dir: OutDirOpt,
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            help="equal: the plain mean; fit: the weights that grade the out-of-fold fruits "
            "best, each fold's chosen on the other folds only.",
        ),
    ] = "equal",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Combine runs into one run graded by the weighted mean of their calibrated
    probabilities, with its own temperature, metrics.json, predictions.csv and fruits.csv;
    a photo is unfamiliar when any member finds it so. The new run folder grades like any
    other (predict, evaluate, compare, serve, explain, export)."""
    from ..workflows.ensemble import make_ensemble

    result = make_ensemble(runs, out_dir, weights, overwrite, progress_flag(quiet))
    print_ensemble(result)


def print_ensemble(result: Any) -> None:
    """What an ensemble run holds, for ``ensemble`` and ``train --preset best``."""
    notices(result.notices)
    m = result.metrics
    shares = ", ".join(f"{label} {w:.2f}" for label, w in zip(result.labels, result.weights,
                                                                 strict=True))  # fmt: skip
    out.print(f"[bold]Ensemble[/] of {len(result.labels)} runs, weights ({m['weights']['rule']}): "
              f"{escape(shares)}")  # fmt: skip
    for label, figures in m["members"].items():
        fruit = figures.get("fruit_accuracy")
        out.print(f"  {escape(label)}: accuracy {figures.get('accuracy', float('nan')):.3f}"
                  + (f", fruits {fruit:.3f}" if fruit is not None else ""))  # fmt: skip
    folds = ", ".join(f"{a:.3f}" for a in m["accuracy_folds"])
    out.print(f"Ensemble: accuracy {m['accuracy']:.3f} (folds: {folds}) on {m['n_held_out']} "
              "held-out photos")  # fmt: skip
    for line in held_out_lines(m):
        out.print(line)
    flagged = m.get("familiar", {}).get("held_out_flagged")
    if flagged is not None:
        out.print(f"Familiarity: {flagged:.1%} of held-out photos unfamiliar to some member")
    out.print(f"Run written to {escape(str(result.out))}")
