"""``mangograde suggest``: what to label next."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..basics.errors import plural
from ..basics.outputs import claim_file
from .options import (
    CacheDirOpt,
    FruitGroupsOpt,
    OverwriteOpt,
    QuietOpt,
    RunArg,
    notices,
    out,
    progress_flag,
)


def suggest_command(
    run_dir: RunArg,
    photos: Annotated[list[Path], typer.Argument(help="Unlabelled photo files and/or folders.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many photos (or fruits) to pick.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV to write, first pick first.")] = Path(
        "pick.csv"
    ),
    labelled: Annotated[
        Path | None,
        typer.Option("--labelled", help="CSV of photos already labelled (image_id first)."),
    ] = None,
    groups: FruitGroupsOpt = None,
    by: Annotated[
        str, typer.Option("--by", help="margin (of the two likeliest grades) or entropy.")
    ] = "margin",
    duplicate: Annotated[
        float,
        typer.Option(
            "--duplicate",
            min=0.0,
            help="Near-duplicate distance, as a share of the "
            "photos' typical nearest-neighbour distance (0: exact copies only).",
        ),
    ] = 0.25,  # fmt: skip
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """The photos to label next (with --groups, the fruits): those the run is least sure
    of (calibrated probabilities), spread over its features (k-center), never one already
    labelled and never two near-duplicates."""
    from ..images import ImageCache
    from ..runs import open_predictor
    from ..workflows.suggest import read_labelled, suggest, write_pick

    inputs = [*photos, *(p for p in (labelled, groups) if p)]
    claim_file(out_file, "--out", inputs, [run_dir], overwrite)
    known = read_labelled(labelled) if labelled is not None else None
    predictor = open_predictor(run_dir)
    found = suggest(predictor, photos, n, known, groups, by, duplicate, ImageCache(cache_dir),
                    progress_flag(quiet))  # fmt: skip
    notices(found.notices)
    write_pick(out_file, found, groups is not None)
    what = "fruit" if groups is not None else "photo"
    picked = found.picked
    out.print(f"Picked {plural(len(picked.order), what)} of {len(found.items) - found.labelled} "
              f"unlabelled ({found.labelled} already labelled), least sure first and spread "
              f"over the run's features; {plural(len(picked.duplicates), 'near-duplicate')} "
              f"skipped.")  # fmt: skip
    if len(picked.order) < n:
        out.print(f"[yellow]Only {len(picked.order)} of the {n} asked for:[/] the rest are "
                  "labelled or near-duplicates.")  # fmt: skip
    out.print(f"Wrote {escape(str(out_file))}")
