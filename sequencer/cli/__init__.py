"""`viaform`: the one command-line entry point.

Each sub-command group lives in its own module and is registered here:
``sim`` (simulators), ``tool`` (technicians' manual commands), ``recipe``,
``lot``/``run``/``demo`` (the sequencer).
"""

from __future__ import annotations

import typer

from . import recipe, run, sim, tool, wafer

app = typer.Typer(
    name="viaform",
    help="Equipment control for the two-stage via-opening line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sim.app, name="sim")
app.add_typer(tool.app, name="tool")
app.add_typer(recipe.app, name="recipe")
app.add_typer(wafer.app, name="wafer")
run.register(app)


def main() -> None:
    app()
