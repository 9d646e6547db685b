"""The ``mangograde`` command line: one module per command group, each command thin
(parse, call one library function, print). This module builds the app."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from .. import __version__
from . import (
    adapt,
    compare,
    data,
    ensemble,
    evaluate,
    explain,
    export,
    predict,
    records,
    serve,
    suggest,
    train,
)
from .options import out, state, user_errors


def _plain_help() -> None:
    """Help as users expect it (typer 0.2x shows ``{data}`` for an argument and ``<bool>``
    for every flag): ``DATA`` / ``[DATA]`` in the usage line, no type beside a flag."""
    from typer import core

    def usage_name(self: core.TyperArgument) -> str:
        name = self.metavar or self.name.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    if hasattr(core, "TyperArgument") and hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = usage_name
    shown = getattr(core.TyperOption, "display_type_rich", None)
    if shown is not None:

        def flag_type(self: core.TyperOption, ctx: object) -> str | None:
            return None if self.is_flag else shown(self, ctx)

        core.TyperOption.display_type_rich = flag_type


_plain_help()

HELP = "Grade harvested mangoes (A > B > C) from photos, and compare models honestly."


def _top() -> typer.Typer:
    return typer.Typer(
        name="mangograde",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        # Plain help: lines wrap at any terminal width and no option name or default is
        # cut ("--max-request-pix…" in the rich tables of a narrow terminal).
        rich_markup_mode=None,
    )


app = _top()
data_app = typer.Typer(
    help="Look at a dataset: before training (inspect, prepare, cache) and after (audit its "
    "labels, check new photos against a run: familiar).",
    no_args_is_help=True,
)
GROUPS = {"data": data_app, "presets": train.presets_app, "db": records.db_app,
          "lots": records.lots_app}  # fmt: skip
for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)


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
        "audit": data.data_audit,
        "familiar": data.data_familiar,
        "labels": records.data_labels,
        "corrections": data.data_corrections,
    },
    app: {
        "synth": data.synth_command,
        "demo": data.demo_command,
        "train": train.train_command,
        "search": train.search_command,
        "sweep": train.sweep_command,
        "tsne": train.tsne_command,
        "ablate": train.ablate_command,
        "evaluate": evaluate.evaluate_command,
        "predict": predict.predict_command,
        "explain": explain.explain_command,
        "compare": compare.compare_command,
        "serve": serve.serve_command,
        "export": export.export_command,
        "suggest": suggest.suggest_command,
        "adapt": adapt.adapt_command,
        "ensemble": ensemble.ensemble_command,
    },
    train.presets_app: {"show": train.presets_show},
    records.db_app: {"upgrade": records.db_upgrade},
    records.lots_app: {
        "list": records.lots_list,
        "show": records.lots_show,
        "report": records.lots_report,
        "verify": records.lots_verify,
        "close": records.lots_close,
        "reopen": records.lots_reopen,
        "prune": records.lots_prune,
    },
}
for group, commands in COMMANDS.items():
    for name, command in commands.items():
        group.command(name)(user_errors(command))


def _only(name: str) -> typer.Typer:
    """The app with one group or command: typer makes every registered command's options
    before it runs one (a tenth of a second of each command's start)."""
    found = _top()
    found.callback(help=HELP)(main_options)
    if name in GROUPS:
        found.add_typer(GROUPS[name], name=name)
    else:
        found.command(name)(user_errors(COMMANDS[app][name]))
    return found


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    (_only(first) if first in GROUPS or first in COMMANDS[app] else app)()
