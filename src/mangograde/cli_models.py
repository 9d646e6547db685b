"""Commands that train and tune models: train, presets, search, sweep, tsne, ablate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from . import config
from .cli import (
    CacheDirOpt,
    GradesOpt,
    GroupsOpt,
    LabelsOpt,
    SkipBadOpt,
    app,
    out,
    parse_grades,
    user_errors,
)
from .data import Dataset, load_dataset
from .images import ImageCache
from .synth import is_synthetic

presets_app = typer.Typer(help="List the named recipes, or show one as YAML.")
app.add_typer(presets_app, name="presets")

DataArg = Annotated[Path, typer.Argument(help="Folder of photos, or of grade folders.")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="svm | rf | colour | cnn (default: the preset's model)."),
]
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", help="Named recipe (`mangograde presets` lists them)."),
]
CvOpt = Annotated[int | None, typer.Option("--cv", help="K-fold cross-validation by fruit.")]
ValOpt = Annotated[
    float | None,
    typer.Option("--val-fraction", help="Hold out this share of fruits instead of --cv."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for splits and models.")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings (over the preset).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override one setting, e.g. --set params.C=2 (repeatable; last wins)."
    ),
]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Folder to write the results into.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def resolve_settings(
    model: str | None,
    preset: str | None,
    config_file: Path | None,
    assignments: list[str] | None,
    cv: int | None = None,
    val_fraction: float | None = None,
    seed: int | None = None,
    folds: int | None = None,
) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if folds is not None:
        flags["blend"] = {"folds": folds}
    if cv is not None and val_fraction is not None:
        raise typer.BadParameter("Give --cv or --val-fraction, not both.")
    if cv is not None:
        flags["split"] = {"cv": cv, "val_fraction": None}
    if val_fraction is not None:
        flags["split"] = {"cv": None, "val_fraction": val_fraction}
    if seed is not None:
        flags["seed"] = seed
    return config.resolve(model, preset, config_file, assignments or [], flags)


def open_dataset(
    data: Path,
    labels: Path | None,
    groups: Path | None,
    grades: str | None,
    allow_single_grade: bool = False,
) -> tuple[Dataset, dict[str, Any]]:
    dataset = load_dataset(
        data, labels, groups, parse_grades(grades), allow_single_grade=allow_single_grade
    )
    record = {
        "root": str(data.resolve()),  # held-out photos are found again from any folder
        "labels": str(labels) if labels else None,
        "groups": str(groups) if groups else None,
        "layout": dataset.layout,
        "synthetic": is_synthetic(data),
    }
    for notice in dataset.notices:
        out.print(f"[yellow]Note:[/] {escape(notice)}")
    return dataset, record


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None


@app.command("train")
@user_errors
def train_command(
    data: DataArg,
    out_dir: OutDirOpt,
    model: ModelOpt = None,
    preset: PresetOpt = None,
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    cv: CvOpt = None,
    val_fraction: ValOpt = None,
    seed: SeedOpt = None,
    config_file: ConfigOpt = None,
    assignments: SetOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run already in --out.")
    ] = False,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            help="CNN blending: train K models on K fruit-grouped train/validation splits "
            "and vote (--set blend.voting=mean averages probabilities).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue a killed CNN run in --out from its checkpoints."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a model with group-aware folds and write a run folder.

    RUN/ gets config.yaml, model/ (one bundle per fold), predictions.csv, metrics.json,
    timing.json and, when photos were skipped, skipped.csv. A CNN run adds history.csv
    and curves.png (loss and accuracy per epoch), and checkpoints/ while it trains.
    """
    from .training import train_run

    if resume and overwrite:
        raise typer.BadParameter("Give --resume or --overwrite, not both.")
    settings = resolve_settings(
        model, preset, config_file, assignments, cv, val_fraction, seed, folds
    )
    dataset, record = open_dataset(data, labels, groups, grades)
    result = train_run(
        settings,
        dataset,
        out_dir,
        ImageCache(cache_dir),
        skip_bad,
        overwrite,
        _progress(quiet),
        record,
        resume,
    )
    m, t = result.metrics, result.timing
    folds = ", ".join(f"{a:.3f}" for a in m["accuracy_folds"])
    out.print(
        f"[bold]{settings['preset'] or settings['model']}[/]: accuracy {m['accuracy']:.3f} "
        f"(folds: {folds}) on {m['n_held_out']} held-out photos"
    )
    if "oob_honest" in m:
        out.print(
            f"OOB accuracy: raw {m['oob_raw']:.3f} (a photo may be judged by trees that saw "
            f"its flipped / rotated copies or its fruit's other photos), honest "
            f"{m['oob_honest']:.3f} (only trees that saw nothing of its fruit)"
        )
    out.print(
        f"Time: decode {t['decode_s']:.1f} s, fit {t['fit_s']:.1f} s, predict "
        f"{t['predict_per_photo_ms']:.2f} ms per photo"
    )
    if "data_share" in t:
        out.print(
            f"CNN: {m['epochs_run']} epochs; augmentation and batches took "
            f"{t['data_share']:.0%} of training. Curves in curves.png"
        )
    if m["n_skipped"]:
        out.print(f"[yellow]Skipped {m['n_skipped']} unreadable photos[/] (listed in skipped.csv)")
    out.print(f"Run written to {escape(str(result.out))}")


@presets_app.callback(invoke_without_command=True)
def presets_list(ctx: typer.Context) -> None:
    """List the named recipes."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("preset", "model", "what it is", title="Presets")
    for name in config.preset_names():
        entry = config.PRESETS[name]
        table.add_row(name, entry["model"], entry.get("description", ""))
    out.print(table)


@presets_app.command("show")
@user_errors
def presets_show(name: Annotated[str, typer.Argument(help="Preset name.")]) -> None:
    """Print a preset's fully resolved settings as YAML (usable with --config)."""
    settings = config.resolve(preset_name=name)
    out.print(config.dump(settings), end="", highlight=False, markup=False)


@app.command("search")
@user_errors
def search_command(
    data: DataArg,
    out_dir: OutDirOpt,
    preset: PresetOpt = "svm-study",
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    cv: CvOpt = None,
    seed: SeedOpt = None,
    config_file: ConfigOpt = None,
    assignments: SetOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Grid search of the SVM (C, gamma, PCA components) on folds by fruit.

    The grid is the preset's `search:` section (svm-study: the study's 3 x 4 x 4 grid);
    change it with --config or --set search.C=[1,10]. Writes search.csv and search.png.
    """
    from .tuning import svm_search

    settings = resolve_settings("svm", preset, config_file, assignments, cv, None, seed)
    dataset, _ = open_dataset(data, labels, groups, grades)
    rows = svm_search(settings, dataset, out_dir, ImageCache(cache_dir), skip_bad, _progress(quiet))
    best = max(rows, key=lambda r: r["accuracy"])
    table = Table("PCA", "C", "gamma", "accuracy", "std", title="Top of the grid")
    for r in sorted(rows, key=lambda r: -r["accuracy"])[:8]:
        acc, std = f"{r['accuracy']:.3f}", f"{r['accuracy_std']:.3f}"
        table.add_row(str(r["n_components"]), f"{r['C']:g}", str(r["gamma"]), acc, std)
    out.print(table)
    out.print(
        f"Best: n_components={best['n_components']} C={best['C']:g} gamma={best['gamma']} "
        f"-> {best['accuracy']:.3f}. Table and heatmap in {escape(str(out_dir))}"
    )


@app.command("sweep")
@user_errors
def sweep_command(
    data: DataArg,
    out_dir: OutDirOpt,
    param: Annotated[str, typer.Option("--param", help="Forest parameter to vary.")],
    values: Annotated[str, typer.Option("--values", help="Comma-separated, e.g. 100,300,1000.")],
    preset: PresetOpt = "rf-study",
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    cv: CvOpt = None,
    seed: SeedOpt = None,
    config_file: ConfigOpt = None,
    assignments: SetOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Vary one forest parameter; plot grouped CV accuracy and raw / honest OOB against it.

    Parameters: n_estimators, max_features, min_samples_leaf, min_samples_split, max_depth,
    max_samples, selection_scaling, n_components. Writes sweep.csv and sweep.png.
    """
    from .tuning import forest_sweep, parse_values

    settings = resolve_settings("rf", preset, config_file, assignments, cv, None, seed)
    dataset, _ = open_dataset(data, labels, groups, grades)
    rows = forest_sweep(
        settings,
        dataset,
        param,
        parse_values(values),
        out_dir,
        ImageCache(cache_dir),
        skip_bad,
        _progress(quiet),
    )
    table = Table(param, "CV accuracy", "OOB raw", "OOB honest", title=f"Sweep of {param}")
    for r in rows:
        table.add_row(
            str(r["value"]),
            f"{r['cv_accuracy']:.3f}",
            f"{r['oob_raw']:.3f}",
            f"{r['oob_honest']:.3f}",
        )
    out.print(table)
    out.print(f"Table and plot in {escape(str(out_dir))}")


@app.command("tsne")
@user_errors
def tsne_command(
    data: DataArg,
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    preset: PresetOpt = "svm-raw",
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Resize photos to SIZE x SIZE first.")
    ] = 64,
    pca: Annotated[
        int, typer.Option("--pca", help="PCA components before t-SNE (0: raw pixels).")
    ] = 50,
    three_d: Annotated[bool, typer.Option("--3d", help="A 3-D map instead of 2-D.")] = False,
    perplexity: Annotated[float, typer.Option("--perplexity")] = 30.0,
    seed: SeedOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Draw a t-SNE map of the photos' pixel features, coloured by grade (study 2.4.2)."""
    from .tuning import tsne_map

    assignments = [f"features.size={size}"] if size else []
    settings = resolve_settings(None, preset, None, assignments, None, None, seed)
    dataset, _ = open_dataset(data, labels, groups, grades)
    path, _ = tsne_map(
        settings,
        dataset,
        out_file,
        3 if three_d else 2,
        pca or None,
        perplexity,
        ImageCache(cache_dir),
        skip_bad,
        _progress(quiet),
    )
    out.print(f"t-SNE map written to {escape(str(path))} (coordinates in .csv beside it)")


@app.command("ablate")
@user_errors
def ablate_command(
    data: DataArg,
    out_dir: OutDirOpt,
    vary: Annotated[
        list[str],
        typer.Option(
            "--vary",
            help="key=value1,value2: train the recipe once per value (repeatable; one factor "
            "at a time). A value may bring settings: optimizer=sgd,adam+lr=0.001.",
        ),
    ],
    model: ModelOpt = None,
    preset: PresetOpt = None,
    labels: LabelsOpt = None,
    groups: GroupsOpt = None,
    grades: GradesOpt = None,
    cv: CvOpt = None,
    val_fraction: ValOpt = None,
    seed: SeedOpt = None,
    config_file: ConfigOpt = None,
    assignments: SetOpt = None,
    skip_bad: SkipBadOpt = False,
    cache_dir: CacheDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare variants of a recipe on one split (the study's ablations).

    E.g. --model cnn --vary order=act-bn,bn-act --vary activation=relu,leaky_relu,prelu
    --vary pooling=max,conv --vary dropout=0.3,0.5 --vary optimizer=sgd,adam+lr=0.001.
    The split is --val-fraction's hold-out, or fold 0 of --cv. Writes ablation.csv,
    ablation.md, history.csv and curves.png.
    """
    from .ablation import ablate, parse_vary

    def resolve(extra: list[str]) -> dict[str, Any]:
        return resolve_settings(
            model, preset, config_file, [*(assignments or []), *extra], cv, val_fraction, seed
        )

    factors = parse_vary(vary)
    dataset, _ = open_dataset(data, labels, groups, grades)
    rows = ablate(
        resolve, factors, dataset, out_dir, ImageCache(cache_dir), skip_bad, _progress(quiet)
    )
    table = Table("factor", "value", "accuracy", "fit (s)", title="Ablation (one split)")
    for r in rows:
        table.add_row(r["factor"], r["value"], f"{r['accuracy']:.3f}", f"{r['fit_s']:.1f}")
    out.print(table)
    out.print(f"Table (ablation.csv, ablation.md) and curves in {escape(str(out_dir))}")
