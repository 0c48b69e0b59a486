"""`viaform`: the one command-line entry point.

Each sub-command group lives in its own module and is registered here:
``sim`` (simulators), ``tool`` (technicians' manual commands), ``recipe``,
``run``/``demo`` (the sequencer), ``daemon`` and its clients ``lot``, ``wafer``,
``alarms``, ``audit``.
"""

from __future__ import annotations

import typer

from . import alarms, audit, daemon, lot, recipe, run, sim, tool, wafer

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
app.add_typer(lot.app, name="lot")
run.register(app)
daemon.register(app)
alarms.register(app)
audit.register(app)


def main() -> None:
    app()
