"""What the commands share: consoles, the error edge, and option groups.

An option group is declared once: ``@data_options`` adds ``--labels``, ``--groups``,
``--grades``, ``--skip-bad``, ``--cache-dir`` and ``--quiet`` to a command and hands it
one :class:`DataOptions`; ``@recipe_options`` adds ``--model``, ``--preset``, ``--cv``,
``--val-fraction``, ``--seed``, ``--config`` and ``--set`` as one :class:`RecipeOptions`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..basics.errors import DatasetError, MangogradeError, SettingsError
from ..basics.limits import DEFAULT_MAX_PIXELS
from ..basics.outputs import claim_file, claim_folder

if TYPE_CHECKING:
    from ..data import Dataset
    from ..graders import Grader
    from ..images import ImageCache
    from ..models.registry import Settings

out = Console(soft_wrap=True)  # long paths stay whole, for copying
err = Console(stderr=True, soft_wrap=True)
state = {"debug": False}
F = TypeVar("F", bound=Callable[..., object])


# What `mangograde[train]` adds to the core install (which grades exports only).
TRAINING_MODULES = ("sklearn", "torch", "torchvision", "yaml", "matplotlib", "scipy", "numba",
                    "lime", "skimage", "captum")  # fmt: skip


def user_errors(command: F) -> F:
    """Turn a MangogradeError into one clear message and exit status 1; so too a command
    that needs the training install on a slim one."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MangogradeError as exc:
            if state["debug"]:
                raise
            err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except ModuleNotFoundError as exc:
            if state["debug"] or (exc.name or "").split(".")[0] not in TRAINING_MODULES:
                raise
            err.print(
                f"[bold red]Error:[/] this command needs {exc.name}, part of the training "
                "install: pip install 'mangograde[train]'. This install grades exported runs "
                "only (`mangograde predict EXPORT_DIR`).",
                highlight=False,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def notices(lines: list[str]) -> None:
    for line in lines:
        out.print(f"[yellow]Note:[/] {escape(line)}")


def warn(lines: list[str]) -> None:
    """Loud: what makes a result unfit to use."""
    for line in lines:
        err.print(f"[bold red]Warning:[/] {escape(line)}", highlight=False)


def progress_flag(quiet: bool) -> bool | None:
    """False when --quiet; None lets the bars decide (on a terminal only)."""
    return False if quiet else None


def parse_grades(grades: str | None) -> tuple[str, ...] | None:
    return tuple(g.strip() for g in grades.split(",")) if grades else None


DataArg = Annotated[Path, typer.Argument(help="Folder of photos, or of grade folders.")]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Label CSV (image_id,label; header optional; UTF-8, BOM or Big5), or Label "
        "Studio's JSON, JSON_MIN or CSV export as it comes.",
    ),
]
AnnotationsOpt = Annotated[
    str,
    typer.Option(
        "--annotations",
        help="A Label Studio task with several annotations: latest (the last updated) or "
        "majority (the grade most annotators chose; a tie is named, never guessed).",
    ),
]
GroupsOpt = Annotated[
    Path | None,
    typer.Option(
        "--groups",
        help="Which photos show one fruit: a CSV of image,group (a group is a fruit; its "
        "photos are kept together and graded as one) or, to train, auto: near-duplicates "
        "and bursts (EXIF time) form the fruits.",
    ),
]
GradesOpt = Annotated[
    str | None,
    typer.Option(
        "--grades",
        help="Grade names best-first, comma-separated, e.g. Extra_Class,Class_I,Class_II.",
    ),
]
SkipBadOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad", help="Leave unreadable photos out (each is listed) instead of stopping."
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where decoded photos are cached (default: $MANGOGRADE_CACHE_DIR or "
        "~/.cache/mangograde).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars or log lines.")]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse photos that would decode to more pixels than this (a JPEG is first "
        "reduced while read; other formats are decoded whole).",
    ),
]
FamiliarOpt = Annotated[
    str,
    typer.Option(
        "--familiar",
        help="on: a photo unlike the run's training photos is labelled check (reason "
        "unfamiliar), and the batch is tested for drift; off: grade such photos like any "
        "other. Runs trained before familiarity existed grade without it either way.",
    ),
]


def familiar_on(value: str) -> bool:
    """``--familiar on`` or ``off``."""
    if value not in ("on", "off"):
        raise typer.BadParameter(f"--familiar must be on or off, not {value!r}.")
    return value == "on"


def familiar_switch(grader: Grader, value: str) -> Grader:
    """The grader, its familiarity turned off when ``--familiar off``."""
    if not familiar_on(value):
        grader.without_familiarity()
    return grader


OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace the output if it already exists."),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Fit the independent models in parallel: loky or threading on this machine, "
        "dask or ray on a cluster (default: here, one after another).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of the Dask scheduler (e.g. tcp://host:8786) or Ray cluster; "
        "--backend dask without it starts a local cluster sized to this machine.",
    ),
]
IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include", help="Only photos whose id matches this glob, e.g. 'Class_I/*' (repeatable)."
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Leave out photos whose id matches (repeatable)."),
]
SampleOpt = Annotated[
    int | None,
    typer.Option("--sample", min=1, help="About N photos: whole fruits, each grade in its share."),
]
SampleSeedOpt = Annotated[int, typer.Option("--sample-seed", help="Seed of --sample.")]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Folder to write the results into.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for splits and models.")]
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
BootSeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the bootstrap (and of LIME, in compare).")
]
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


def fruits_asked(groups: Path | None, fruit_folders: bool) -> bool:
    """Whether the photos are graded as fruits; one way of saying which, not both."""
    if groups is not None and fruit_folders:
        raise SettingsError("Give --groups or --fruit-folders, not both.")
    return groups is not None or fruit_folders


@dataclass
class DataOptions:
    """Where the labels, groups and decoded photos are, and how loud to be."""

    labels: LabelsOpt = None
    annotations: AnnotationsOpt = "latest"
    groups: GroupsOpt = None
    grades: GradesOpt = None
    skip_bad: SkipBadOpt = False
    unordered: Annotated[
        bool,
        typer.Option(
            "--unordered",
            help="The labels are classes with no order (varieties, good / bad / empty), "
            "not grades best-first: no grade distance or kappa, and 'classes' in reports.",
        ),
    ] = False
    include: IncludeOpt = None
    exclude: ExcludeOpt = None
    sample: SampleOpt = None
    sample_seed: SampleSeedOpt = 0
    cache_dir: CacheDirOpt = None
    quiet: QuietOpt = False
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        from ..images import set_max_pixels

        set_max_pixels(self.max_pixels)  # every decode of this command obeys it

    @property
    def fruits_auto(self) -> bool:
        """``--groups auto``: the fruits are found in the photos (bursts, near-duplicates)."""
        return self.groups is not None and str(self.groups) == "auto"

    @property
    def fruits_csv(self) -> Path | None:
        """``--groups`` as the CSV that says which photos show one fruit (None: no CSV)."""
        return None if self.groups is None or self.fruits_auto else self.groups

    @property
    def cache(self) -> ImageCache:
        from ..images import ImageCache

        return ImageCache(self.cache_dir)

    @property
    def progress(self) -> bool | None:
        return progress_flag(self.quiet)

    @property
    def loading(self) -> dict[str, Any]:
        """The keyword arguments with which library functions load photos."""
        return {"cache": self.cache, "skip_bad": self.skip_bad, "progress": self.progress}

    def open(
        self,
        data: Path,
        allow_single_grade: bool = False,
        known: tuple[str, ...] | None = None,
        unordered: bool | None = None,
        auto_groups: bool = False,
    ) -> tuple[Dataset, dict[str, Any]]:
        """The dataset, and the record of it that a run keeps. ``known``: grades to try
        first when --grades is not given (a run's own, for evaluate); ``auto_groups``:
        the command takes --groups auto (fruits found in the photos when decoded)."""
        from ..data import load_dataset
        from ..data.label_studio import check_annotations
        from ..data.synth import is_synthetic

        unordered = self.unordered if unordered is None else unordered
        grades = parse_grades(self.grades)
        auto = self.fruits_auto
        if auto and not auto_groups:
            raise SettingsError(
                "--groups auto finds bursts and near-duplicates as photos are decoded for "
                "training (train, tune, sweep, ablate); here, give a groups CSV."
            )
        groups = self.fruits_csv
        filters = {"include": self.include or (), "exclude": self.exclude or (),
                   "annotations": check_annotations(self.annotations)}  # fmt: skip
        dataset = None
        if grades is None and known is not None:
            try:
                dataset = load_dataset(
                    data, self.labels, groups, known, allow_single_grade, **filters
                )
            except DatasetError:
                dataset = None  # other names: matched to the run's by rank later
        if dataset is None:
            dataset = load_dataset(
                data, self.labels, groups, grades, allow_single_grade, unordered, **filters
            )
        if auto:
            dataset = replace(dataset, auto_groups=True)
        chosen = []
        if self.sample is not None:
            dataset, chosen = dataset.sampled(self.sample, self.sample_seed)
        record = {
            "root": str(data.resolve()),  # held-out photos are found again from any folder
            "labels": str(self.labels) if self.labels else None,
            **({"annotations": self.annotations} if self.annotations != "latest" else {}),
            "groups": str(self.groups) if self.groups else None,
            "layout": dataset.layout,
            "synthetic": is_synthetic(data),
        }
        if self.include or self.exclude or self.sample is not None:
            record["selection"] = {
                "include": list(self.include or []),
                "exclude": list(self.exclude or []),
                "sample": self.sample,
                "sample_seed": self.sample_seed,
            }
        notices([*dataset.notices, *chosen])
        return dataset, record


@dataclass
class ParallelOptions:
    """Where independent fits run (see :mod:`mangograde.runs.parallel`)."""

    backend: BackendOpt = None
    scheduler: SchedulerOpt = None


@dataclass
class RecipeOptions:
    """Which recipe to train, and how to hold photos out."""

    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="svm | rf | colour | cnn | transfer | stack, or a plugin's family (default: the "
            "preset's model).",
        ),
    ] = None
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="Named recipe (`mangograde presets` lists them)."),
    ] = None
    cv: Annotated[int | None, typer.Option("--cv", help="K-fold cross-validation by fruit.")] = None
    val_fraction: Annotated[
        float | None,
        typer.Option("--val-fraction", help="Hold out this share of fruits instead of --cv."),
    ] = None
    seed: SeedOpt = None
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML file of settings (over the preset).")
    ] = None
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override one setting, e.g. --set params.C=2 (repeatable; last wins)."
        ),
    ] = None

    def settings(self, extra: Sequence[str] = (), **flags: Any) -> Settings:
        """The resolved settings, with ``extra`` --set assignments and dedicated ``flags``."""
        if self.cv is not None and self.val_fraction is not None:
            raise typer.BadParameter("Give --cv or --val-fraction, not both.")
        if self.cv is not None:
            flags["split"] = {"cv": self.cv, "val_fraction": None}
        if self.val_fraction is not None:
            flags["split"] = {"cv": None, "val_fraction": self.val_fraction}
        if self.seed is not None:
            flags["seed"] = self.seed
        from ..models.registry import resolve

        assignments = [*(self.assignments or []), *extra]
        return resolve(self.model, self.preset, self.config_file, assignments, flags)


def claim_outputs(
    folder: Path, names: tuple[str, ...], data: Path, opts: DataOptions, overwrite: bool
) -> None:
    """Check, before any work, that ``folder/name`` may be written for each name (never
    inside the photo folder ``data`` the command reads)."""
    claim_folder(folder, inputs=[data])
    inputs = [data, *(p for p in (opts.labels, opts.fruits_csv) if p)]
    for name in names:
        claim_file(folder / name, "--out", inputs, (), overwrite)


def _option_group(group: type, name: str, defaults: dict[str, Any]) -> Callable[[F], F]:
    """Add ``group``'s fields to a command's options; the command gets one ``group``."""
    names = [f.name for f in fields(group)]
    resolved = inspect.get_annotations(group, eval_str=True)
    added = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=resolved[f.name],
            default=defaults.get(f.name, f.default),
        )
        for f in fields(group)
    ]

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != name]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in names}
            return command(*args, **{name: group(**values)}, **kwargs)

        parameters = [*kept, *added]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # typer reads the signature above, not the command's
        return wrapper  # type: ignore[return-value]

    return decorate


def parallel_options(command: F) -> F:
    return _option_group(ParallelOptions, "parallel", {})(command)


def data_options(command: F) -> F:
    return _option_group(DataOptions, "opts", {})(command)


def recipe_options(**defaults: Any) -> Callable[[F], F]:
    """``@recipe_options(preset="svm-study")`` changes a default for one command."""
    return _option_group(RecipeOptions, "recipe", defaults)
