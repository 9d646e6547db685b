"""``mangograde explain``: why a run graded a photo (or a fruit's photos) so."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..basics.errors import SettingsError
from ..basics.outputs import claim_file
from .options import (
    FoldOpt,
    FruitFoldersOpt,
    FruitGroupsOpt,
    OverwriteOpt,
    QuietOpt,
    RunArg,
    fruits_asked,
    out,
    progress_flag,
)

LimeSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of LIME's perturbed photos.")]


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
    from ..graders import grade_batch
    from ..images import load_images
    from ..report.figures import explanation_figure, fruit_explanation_figure
    from ..runs import open_predictor
    from ..runs.predictor import member_views

    if samples < 10:
        raise typer.BadParameter(f"--samples must be at least 10, got {samples}.")
    as_fruit = fruits_asked(groups, fruit_folders)
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
        odds = ", ".join(f"{g} {p:.2f}" for g, p in found.proba.items())
        views = member_views(predictor)
        if views:  # an ensemble: its own view, then each member's, for the same grade
            seen = [found, *(explain(view, image, "lime", found.grade, samples, seed,
                                     progress_flag(quiet)) for _, view in views)]  # fmt: skip
            names = ["the ensemble", *(f"{label} alone" for label, _ in views)]
            title = f"Predicted {found.predicted} ({odds}); explained grade {found.grade}"
            fruit_explanation_figure(seen, names, title, out_file)
            for name, view in zip(names[1:], seen[1:], strict=True):
                mine = ", ".join(f"{g} {p:.2f}" for g, p in view.proba.items())
                out.print(f"{escape(name)}: {view.predicted} ({mine})")
        else:
            explanation_figure(found, out_file)
        out.print(f"Predicted {found.predicted} ({odds}); explained grade {found.grade}")
        out.print(f"Wrote {escape(str(out_file))}")
        return
    name, paths, ids = _one_fruit(photos, paths, ids, groups, fruit)
    predictor = open_predictor(run_dir, fold)
    progress = progress_flag(quiet)
    images = load_images(paths, predictor.geometry, progress=progress).arrays
    fruits = grade_batch(predictor, images, ids, [name] * len(images)).as_fruits()
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
