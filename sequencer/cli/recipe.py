"""`viaform recipe` (being written)."""

from __future__ import annotations

import typer

app = typer.Typer(help="recipe commands", no_args_is_help=True)
