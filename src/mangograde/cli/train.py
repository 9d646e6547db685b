"""Commands that train and tune models: train, presets, search, sweep, tsne, ablate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..basics.errors import SettingsError
from .options import (
    DataArg,
    DataOptions,
    OutDirOpt,
    OverwriteOpt,
    ParallelOptions,
    RecipeOptions,
    claim_outputs,
    data_options,
    notices,
    out,
    parallel_options,
    recipe_options,
    warn,
)
from .tables import held_out_lines


def _train_ensemble(
    settings: dict[str, Any],
    dataset: Any,
    out_dir: Path,
    record: Any,
    overwrite: bool,
    opts: DataOptions,
    parallel: ParallelOptions,
    rejects: Path | None = None,
) -> None:
    """``--preset best`` and other ensembles: each member trained on the same folds, then
    their ensemble."""
    from ..workflows.ensemble import train_ensemble
    from .ensemble import print_ensemble

    def starting(number: int, total: int, name: str) -> None:
        out.print(f"[bold]Member {number} of {total}: {escape(name)}[/]")

    result = train_ensemble(settings, dataset, out_dir, data_record=record, overwrite=overwrite,
                            on_member=starting, rejects=rejects, **opts.loading,
                            **vars(parallel))  # fmt: skip
    print_ensemble(result)


presets_app = typer.Typer(help="List the named recipes, or show one as YAML.")


@data_options
@recipe_options()
@parallel_options
def train_command(
    data: DataArg,
    out_dir: OutDirOpt,
    recipe: RecipeOptions,
    opts: DataOptions,
    parallel: ParallelOptions,
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
    track: Annotated[
        str | None,
        typer.Option(
            "--track",
            help="Mirror the run in an experiment tracker: mlflow (default when "
            "$MLFLOW_TRACKING_URI is set; store: that URI, else sqlite:///mlflow.db).",
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--reject-photos",
            help="A folder of photos of what the line must never grade (empty cups, trays, "
            "leaves): such photos are answered check, reason not-a-fruit, never a grade. "
            "Never a training photo; the run reports how many held-out ones it catches.",
        ),
    ] = None,
    only_fold: Annotated[
        int | None,
        typer.Option(
            "--only-fold",
            help="Train fold I of --cv K alone: the same fold as in the whole run (check a "
            "recipe in a K-th of the time, or spread folds over machines).",
        ),
    ] = None,
) -> None:
    """Train a model with group-aware folds and write a run folder.

    RUN/ gets config.yaml, model/ (one bundle per fold), predictions.csv, metrics.json,
    timing.json and, when photos were skipped, skipped.csv. A CNN run adds history.csv
    and curves.png (loss and accuracy per epoch), and checkpoints/ while it trains.
    """
    from ..runs import mirror_run, tracker_for
    from ..workflows.train import train_run

    tracker = tracker_for(track)
    if resume and overwrite:
        raise typer.BadParameter("Give --resume or --overwrite, not both.")
    extra = [] if only_fold is None else [f"split.only_fold={only_fold}"]
    settings = recipe.settings(extra)
    if folds is not None:
        if "blend" not in settings:
            raise SettingsError(
                f"--folds blends several models of a family that blends (cnn); --model "
                f"{settings['model']} does not. Drop --folds, or use --cv for k-fold scores."
            )
        settings = recipe.settings(extra, blend={"folds": folds})
    dataset, record = opts.open(data, auto_groups=True)
    from ..models.registry import get_model

    if get_model(settings["model"]).members is not None:
        _train_ensemble(settings, dataset, out_dir, record, overwrite, opts, parallel, rejects)
        return
    result = train_run(
        settings,
        dataset,
        out_dir,
        overwrite=overwrite,
        data_record=record,
        resume=resume,
        rejects=rejects,
        **opts.loading,
        **vars(parallel),
    )
    if result.rank > 0:  # under torchrun, process 0 reports
        return
    notices(result.notices)
    m, t = result.metrics, result.timing
    folds = ", ".join(f"{a:.3f}" for a in m["accuracy_folds"])
    auto = " (split by --groups auto: bursts and near-duplicates kept together)"
    out.print(
        f"[bold]{settings['preset'] or settings['model']}[/]: accuracy {m['accuracy']:.3f} "
        f"(folds: {folds}) on {m['n_held_out']} held-out photos"
        + (auto if record.get("groups") == "auto" else "")
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
    each = f" ({t['model_bytes'] / m['n_folds'] / 2**20:.1f} MB a fold)" if m["n_folds"] > 1 else ""
    out.print(f"Model on disk: {t['model_bytes'] / 2**20:.1f} MB{each}")
    if "data_share" in t:
        out.print(
            f"CNN: {m['epochs_run']} epochs; augmentation and batches took "
            f"{t['data_share']:.0%} of training. Curves in curves.png"
        )
    found = result.calibration
    if found is not None:
        out.print(
            f"Calibration: temperature {found['temperature']:.2f} (the held-out photos scaled "
            f"by temperatures fit on the other folds'); calibration error (ECE; 0 is perfect) "
            f"{found['ece_before']:.3f} before, {found['ece_after']:.3f} after, on "
            f"{m['n_held_out']} held-out photos"
        )
    for line in held_out_lines(m):
        out.print(line)
    if m["n_skipped"]:
        out.print(f"[yellow]Skipped {m['n_skipped']} unreadable photos[/] (listed in skipped.csv)")
    out.print(f"Run written to {escape(str(result.out))}")
    if tracker:
        out.print(f"Tracked in MLflow as run {mirror_run(result.out)}")
    warn(result.warnings)


@presets_app.callback(invoke_without_command=True)
def presets_list(ctx: typer.Context) -> None:
    """List the named recipes."""
    if ctx.invoked_subcommand is not None:
        return
    from ..models import registry

    table = Table("preset", "model", "what it is", title="Presets")
    for name in registry.preset_names():
        table.add_row(name, *registry.preset_info(name))
    out.print(table)


def presets_show(name: Annotated[str, typer.Argument(help="Preset name.")]) -> None:
    """Print a preset's fully resolved settings as YAML (usable with --config)."""
    from ..basics.config import dump
    from ..models import registry

    out.print(dump(registry.resolve(preset_name=name)), end="", highlight=False, markup=False)


@data_options
@recipe_options(model="svm", preset="svm-study")
@parallel_options
def search_command(
    data: DataArg,
    out_dir: OutDirOpt,
    recipe: RecipeOptions,
    opts: DataOptions,
    parallel: ParallelOptions,
    overwrite: OverwriteOpt = False,
    storage: Annotated[
        str | None,
        typer.Option(
            "--optuna-storage",
            help="Share an Optuna study in this database (sqlite:///search.db; "
            "postgresql://... across machines) instead of the grid: every process started "
            "with the same URL and --study adds its trials to it.",
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option("--trials", help="With --optuna-storage: trials this process runs.")
    ] = 20,
    study: Annotated[
        str, typer.Option("--study", help="With --optuna-storage: the study's name.")
    ] = "mangograde-search",
) -> None:
    """Search the SVM's C, gamma and PCA components on folds by fruit.

    The grid is the preset's `search:` section (svm-study: the study's 3 x 4 x 4 grid);
    change it with --config or --set search.C=[1,10]. Writes search.csv and search.png.
    With --optuna-storage the grid's values bound an Optuna search instead (log scale), and
    search.csv lists every finished trial of the shared study.
    """
    from ..workflows.search import svm_search

    settings = recipe.settings()
    if storage is not None:
        if parallel.backend is not None:
            raise SettingsError(
                "--optuna-storage spreads trials over processes itself: drop --backend."
            )
        from ..workflows.optuna_search import svm_optuna

        claim_outputs(out_dir, ("search.csv",), data, opts, overwrite)
        dataset, _ = opts.open(data, auto_groups=True)
        rows = svm_optuna(settings, dataset, out_dir, storage, trials, study, **opts.loading)
        title = f"Best trials of study {study!r} ({len(rows)} finished)"
    else:
        claim_outputs(out_dir, ("search.csv", "search.png"), data, opts, overwrite)
        dataset, _ = opts.open(data, auto_groups=True)
        rows = svm_search(settings, dataset, out_dir, **opts.loading, **vars(parallel))
        title = "Top of the grid"
    best = max(rows, key=lambda r: r["accuracy"])
    table = Table("PCA", "C", "gamma", "accuracy", "std", title=title)
    for r in sorted(rows, key=lambda r: -r["accuracy"])[:8]:
        acc, std = f"{r['accuracy']:.3f}", f"{r['accuracy_std']:.3f}"
        gamma = f"{r['gamma']:.3g}" if isinstance(r["gamma"], float) else str(r["gamma"])
        table.add_row(str(r["n_components"]), f"{r['C']:.3g}", gamma, acc, std)
    out.print(table)
    out.print(
        f"Best: n_components={best['n_components']} C={best['C']:.3g} gamma={best['gamma']} "
        f"-> {best['accuracy']:.3f}. Results in {escape(str(out_dir))}"
    )


@data_options
@recipe_options(model="rf", preset="rf-study")
@parallel_options
def sweep_command(
    data: DataArg,
    out_dir: OutDirOpt,
    param: Annotated[str, typer.Option("--param", help="Forest parameter to vary.")],
    values: Annotated[str, typer.Option("--values", help="Comma-separated, e.g. 100,300,1000.")],
    recipe: RecipeOptions,
    opts: DataOptions,
    parallel: ParallelOptions,
    overwrite: OverwriteOpt = False,
) -> None:
    """Vary one forest parameter; plot grouped CV accuracy and raw / honest OOB against it.

    Parameters: n_estimators, max_features, min_samples_leaf, min_samples_split, max_depth,
    max_samples, selection_scaling, n_components. Writes sweep.csv and sweep.png.
    """
    from ..workflows.search import forest_sweep, parse_values

    claim_outputs(out_dir, ("sweep.csv", "sweep.png"), data, opts, overwrite)
    dataset, _ = opts.open(data, auto_groups=True)
    rows = forest_sweep(
        recipe.settings(),
        dataset,
        param,
        parse_values(values),
        out_dir,
        **opts.loading,
        **vars(parallel),
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


@data_options
def tsne_command(
    data: DataArg,
    out_file: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    opts: DataOptions,
    preset: Annotated[
        str, typer.Option("--preset", help="Recipe whose pixel features are mapped.")
    ] = "svm-raw",
    size: Annotated[
        int | None, typer.Option("--size", help="Resize photos to SIZE x SIZE first.")
    ] = 64,
    pca: Annotated[
        int, typer.Option("--pca", help="PCA components before t-SNE (0: raw pixels).")
    ] = 50,
    three_d: Annotated[bool, typer.Option("--3d", help="A 3-D map instead of 2-D.")] = False,
    perplexity: Annotated[float, typer.Option("--perplexity")] = 30.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of t-SNE.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw a t-SNE map of the photos' pixel features, coloured by grade (study 2.4.2)."""
    from ..workflows.search import tsne_map

    claim_outputs(
        out_file.parent, (out_file.name, out_file.with_suffix(".csv").name), data, opts, overwrite
    )
    assignments = [f"features.size={size}"] if size else []
    settings = RecipeOptions(preset=preset, seed=seed, assignments=assignments).settings()
    dataset, _ = opts.open(data, auto_groups=True)
    path, _ = tsne_map(
        settings,
        dataset,
        out_file,
        3 if three_d else 2,
        pca or None,
        perplexity,
        **opts.loading,
    )
    out.print(f"t-SNE map written to {escape(str(path))} (coordinates in .csv beside it)")


@data_options
@recipe_options()
@parallel_options
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
    recipe: RecipeOptions,
    opts: DataOptions,
    parallel: ParallelOptions,
    overwrite: OverwriteOpt = False,
) -> None:
    """Compare variants of a recipe on one split (the study's ablations).

    E.g. --model cnn --vary order=act-bn,bn-act --vary activation=relu,leaky_relu,prelu
    --vary pooling=max,conv --vary dropout=0.3,0.5 --vary optimizer=sgd,adam+lr=0.001.
    The split is --val-fraction's hold-out, or fold 0 of --cv. Writes ablation.csv,
    ablation.md, history.csv and curves.png.
    """
    from ..workflows.ablate import ablate, parse_vary

    def resolve(extra: list[str]) -> dict[str, Any]:
        return recipe.settings(extra)

    factors = parse_vary(vary)
    names = ("ablation.csv", "ablation.md", "history.csv", "curves.png")
    claim_outputs(out_dir, names, data, opts, overwrite)
    dataset, _ = opts.open(data, auto_groups=True)
    rows = ablate(resolve, factors, dataset, out_dir, **opts.loading, **vars(parallel))
    table = Table("factor", "value", "accuracy", "fit (s)", title="Ablation (one split)")
    for r in rows:
        table.add_row(r["factor"], r["value"], f"{r['accuracy']:.3f}", f"{r['fit_s']:.1f}")
    out.print(table)
    out.print(f"Table (ablation.csv, ablation.md) and curves in {escape(str(out_dir))}")
