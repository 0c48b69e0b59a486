"""`viaform`: the one command-line entry point.

Each sub-command group lives in its own module and is registered here:
``sim`` (simulators), ``tool`` (technicians' manual commands), ``recipe``,
``run``/``demo`` (the sequencer), ``daemon`` and its clients ``lot``, ``wafer``, ``gem``,
``alarms``, ``audit``.

:func:`main` is the console script: an exception that escapes a command is one
line on stderr (``viaform: …``), exit 2 for what the user can fix in a file
(:class:`ConfigError`, :class:`JournalError`), else exit 1. ``VIAFORM_DEBUG=1``
also prints the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

import sequencer.faces.cli.alarms as alarms
import sequencer.faces.cli.audit as audit
import sequencer.faces.cli.daemon as daemon
import sequencer.faces.cli.gem as gem
import sequencer.faces.cli.lot as lot
import sequencer.faces.cli.plan as plan
import sequencer.faces.cli.recipe as recipe
import sequencer.faces.cli.run as run
import sequencer.faces.cli.sim as sim
import sequencer.faces.cli.tool as tool
import sequencer.faces.cli.wafer as wafer
from drivers.descriptors import cap_open_files
from sequencer.line.config import ConfigError
from sequencer.store.journal import JournalError

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
app.add_typer(gem.app, name="gem")
run.register(app)
plan.register(app)
daemon.register(app)
alarms.register(app)
audit.register(app)

DEBUG_ENV = "VIAFORM_DEBUG"


def main() -> None:
    cap_open_files()  # a tool's connection must get a descriptor select() can watch
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # the last line of defence: one line, never a bare traceback
        sys.exit(report(exc))


def report(exc: BaseException) -> int:
    """Print ``exc`` for a user (and its traceback under ``VIAFORM_DEBUG=1``); the exit code."""
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        traceback.print_exception(exc)
    user_error = isinstance(exc, ConfigError | JournalError)
    text = str(exc).strip() or type(exc).__name__
    if not user_error:
        text = " ".join(part.strip() for part in text.splitlines())
        text += f" ({type(exc).__name__}; {DEBUG_ENV}=1 shows the traceback)"
    print(f"viaform: {text}", file=sys.stderr)
    return 2 if user_error else 1
