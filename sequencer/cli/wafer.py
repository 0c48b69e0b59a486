"""`viaform wafer …`: an operator's confirmation of a move, and a wafer's record.

    viaform wafer moved W01 [W02 …] --to oven     confirm that wafers were moved
    viaform wafer pending                         moves the sequencer waits for
    viaform wafer show W01                        state, results and history
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from ..config import ConfigError, load_tools
from ..operator_moves import LOCATIONS, MoveBook

app = typer.Typer(help="Wafers: confirm moves (real tools), show a wafer's record.",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml")]
DbOpt = Annotated[Path | None, typer.Option("--db", help="journal (default: from tools.yaml)")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"viaform wafer: {message}", err=True)
    return typer.Exit(code)


def _journal_path(config: Path | None, db: Path | None) -> Path:
    if db is not None:
        path = db
    else:
        try:
            path = load_tools(config).journal
        except ConfigError as exc:
            raise _fail(str(exc), 2) from None
    if not path.exists():
        raise _fail(f"no journal at {path}: nothing has run there yet", 2)
    return path


@app.command()
def moved(
    wafers: Annotated[list[str], typer.Argument(help="wafer id(s)")],
    to: Annotated[str, typer.Option("--to", help=f"where to: {', '.join(LOCATIONS)}")],
    by: Annotated[str | None, typer.Option("--by", help="who moved them")] = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Confirm that wafers were moved (operator handling on real tools)."""
    if to not in LOCATIONS:
        raise _fail(f"--to {to!r}: choose from {', '.join(LOCATIONS)}", 2)
    book = MoveBook(_journal_path(config, db))
    try:
        book.confirm(wafers, to, by or getpass.getuser())
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        book.close()
    typer.echo(f"confirmed: {', '.join(wafers)} now at {to}")


@app.command()
def pending(config: ConfigOpt = None, db: DbOpt = None, as_json: Annotated[
        bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """The moves the sequencer is waiting for."""
    book = MoveBook(_journal_path(config, db))
    try:
        rows = book.pending()
    finally:
        book.close()
    if as_json:
        typer.echo(json.dumps([{"wafer": w, "to": d, "requested_at": t} for w, d, t in rows]))
        return
    if not rows:
        typer.echo("no moves pending")
    for wafer_id, dest, _ in rows:
        typer.echo(f"move {wafer_id} to {dest}  (then: viaform wafer moved {wafer_id} --to {dest})")
