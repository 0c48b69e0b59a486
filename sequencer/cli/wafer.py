"""`viaform wafer …`: an operator's confirmation of a move, and a wafer's record.

    viaform wafer moved W01 [W02 …] --to oven     confirm that wafers were moved
    viaform wafer pending                         moves the sequencer waits for
    viaform wafer show W01                        state, results and history
                                                  (from the daemon, else the journal)
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import ConfigError, load_tools
from ..operator_moves import LOCATIONS, MoveBook
from .client import DaemonOpt, call, connect

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


@app.command()
def show(
    wafer_id: Annotated[str, typer.Argument(help="wafer id")],
    daemon: DaemonOpt = None,
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """A wafer's state, results and full history (from the daemon, else the journal)."""
    client = connect(daemon, config, required=False)
    view = call(client, "GET", f"/wafers/{wafer_id}") if client is not None else \
        _from_journal(wafer_id, config, db)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    reason = f" — {view['reason']}" if view.get("reason") else ""
    typer.echo(f"wafer {view['wafer_id']} (lot {view['lot_id']}, slot {view['slot']}): "
               f"{view['state']} at {view['location']}{reason}")
    for key, value in view.get("data", {}).items():
        typer.echo(f"  {key}: {value}")
    for h in view["history"]:
        when = time.strftime("%H:%M:%S", time.localtime(h["t"]))
        step = f" [{h['step']}]" if h["step"] else ""
        typer.echo(f"  {when} {h['state']:<16} {h['location']:<9}{step} {h['note']}")


def _from_journal(wafer_id: str, config: Path | None, db: Path | None) -> dict[str, Any]:
    from ..daemon.history import History

    path = _journal_path(config, db)
    try:
        scale = load_tools(config).time_scale
    except ConfigError:
        scale = 1.0
    hist = History(path, scale)
    try:
        row = hist.wafer(wafer_id)
        if row is None:
            raise _fail(f"no wafer {wafer_id!r} in {path}", 1)
        lot_id, slot, state, data = row
        results = {f"{step}.{k}": v for step, r in hist.results(wafer_id).items()
                   for k, v in r.items() if not isinstance(v, list | dict)}
        return {"wafer_id": wafer_id, "lot_id": lot_id, "slot": slot, "state": state,
                "location": data.get("location", "?"), "reason": data.get("reason") or None,
                "data": results, "history": [vars(h) for h in hist.wafer_history(wafer_id)]}
    finally:
        hist.close()
