"""The ``mangograde`` command line: one module per command group, each command thin
(parse, call one library function, print). This module builds the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from .. import __version__
from . import data, grade, train
from .options import out, state, user_errors

HELP = "Grade harvested mangoes (A > B > C) from photos, and compare models honestly."
app = typer.Typer(
    name="mangograde",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Look at a dataset before training on it.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train.presets_app, name="presets")


def _version(value: bool) -> None:
    if value:
        out.print(f"mangograde {__version__}")
        raise typer.Exit()


@app.callback(help=HELP)
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    state["debug"] = debug


COMMANDS: dict[typer.Typer, dict[str, Callable[..., None]]] = {
    data_app: {
        "inspect": data.data_inspect,
        "prepare": data.data_prepare,
        "cache": data.data_cache,
    },
    app: {
        "synth": data.synth_command,
        "demo": data.demo_command,
        "train": train.train_command,
        "search": train.search_command,
        "sweep": train.sweep_command,
        "tsne": train.tsne_command,
        "ablate": train.ablate_command,
        "evaluate": grade.evaluate_command,
        "predict": grade.predict_command,
        "explain": grade.explain_command,
        "compare": grade.compare_command,
    },
    train.presets_app: {"show": train.presets_show},
}
for group, commands in COMMANDS.items():
    for name, command in commands.items():
        group.command(name)(user_errors(command))


def main() -> None:
    app()
