"""`viaform lot submit|list|status|pause|resume|abort`: lots on the daemon.

    viaform lot submit configs/lots/demo.yaml     viaform lot list
    viaform lot status L1                          viaform lot pause|resume|abort L1
    viaform lot plot L1 --out L1.png               (the journal's Gantt chart, no daemon)

Lots run in the daemon, so these need one (``--daemon URL``, ``$VIAFORM_DAEMON``, or
``daemon: {url: …}`` in tools.yaml); ``viaform run`` runs lot files without a daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sequencer.faces.cli.client import DaemonOpt, call, connect, fail
from sequencer.faces.cli.plot import lot_plot

app = typer.Typer(help="Lots on the daemon: submit, list, status, pause, resume, abort; "
                       "plot a lot's schedule from the journal.", no_args_is_help=True)
app.command("plot")(lot_plot)  # from the journal, no daemon: sequencer/faces/cli/plot.py
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml")]


def _wafer_counts(lot: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for w in lot["wafers"]:
        counts[w["state"]] = counts.get(w["state"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


@app.command()
def submit(lotfile: Annotated[Path, typer.Argument(help="lot file (YAML with lot:)")],
           daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """Send a lot file to the daemon (it checks the lot and its flow: 422 lists problems)."""
    try:
        raw = yaml.safe_load(lotfile.read_text())
    except OSError as exc:
        fail(f"{lotfile}: {exc.strerror or exc}", 2)
    except yaml.YAMLError as exc:
        fail(f"{lotfile}: not valid YAML: {exc}", 2)
    if not isinstance(raw, dict) or not isinstance(raw.get("lot"), dict):
        fail(f"{lotfile}: expected a 'lot:' mapping (lot_id, flow, wafers)", 2)
    client = connect(daemon, config, required=True)
    assert client is not None
    reply = call(client, "POST", "/lots", {"lot": raw["lot"]})
    typer.echo(f"lot {reply['lot_id']} submitted: {reply['state']}")


@app.command("list")
def list_lots(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """Every lot the daemon knows, with its E40 state."""
    client = connect(daemon, config, required=True)
    assert client is not None
    lots = call(client, "GET", "/lots")
    if not lots:
        typer.echo("no lots")
    for lot in lots:
        typer.echo(f"{lot['lot_id']:<12} {lot['flow']:<10} {lot['state']:<17} "
                   f"{_wafer_counts(lot)}")


@app.command()
def status(lot_id: str, daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """One lot: its state and each wafer's state, location, step and reason."""
    client = connect(daemon, config, required=True)
    assert client is not None
    _print_lot(call(client, "GET", f"/lots/{lot_id}"))


def _print_lot(lot: dict[str, Any]) -> None:
    typer.echo(f"lot {lot['lot_id']} ({lot['flow']}): {lot['state']}")
    for w in lot["wafers"]:
        why = f"  {w['reason']}" if w.get("reason") else ""
        typer.echo(f"  {w['slot']:>2} {w['wafer_id']:<12} {w['state']:<17} "
                   f"{w['location']:<9} {w['step'] or '-':<7}{why}")


def _action(action: str) -> None:
    @app.command(action, help=f"{action} a lot (E40)")
    def _cmd(lot_id: str, daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
        client = connect(daemon, config, required=True)
        assert client is not None
        _print_lot(call(client, "POST", f"/lots/{lot_id}/{action}"))


for _a in ("pause", "resume", "abort"):
    _action(_a)
