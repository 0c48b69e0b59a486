"""`viaform gem online|offline|local|remote|status|messages|answer`: the daemon's SECS/GEM
interface.

The operator's side of the E30 control state, through the daemon's HTTP API (``/gem``):
the switches need the technician role and are audited (tool ``gem``); ``status``,
``messages`` (the S10 terminal log, both ways) and ``answer`` (S10F1 to the host) the
operator role. A switch that does not apply in the current control state is refused
with the state named (exit 1); no daemon, or a daemon without ``gem.enabled``, is one
line (exit 1 / 2).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.client import (
    Client,
    DaemonError,
    DaemonOpt,
    NoDaemon,
    call,
    connect,
    fail,
    fail_from,
)

app = typer.Typer(help="The daemon's SECS/GEM equipment interface (docs/gem.md).",
                  no_args_is_help=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="tools.yaml")]


def _show(s: dict[str, Any]) -> str:
    host = f"host {s['host']}" if s.get("host") else "no host"
    spool = f", spooling ({s['spooled']} spooled)" if s.get("spooling") else ""
    comms = "communicating" if s["communicating"] else "not communicating"
    return (f"{s['control_state']} ({comms}, {host}), HSMS port {s['port']}, "
            f"device id {s['device_id']}{spool}")


def _client(daemon: str | None, config: Path | None) -> Client:
    client = connect(daemon, config, required=True)
    assert client is not None
    try:
        client.get("/gem")
    except DaemonError as exc:
        if exc.status == 404:
            fail(f"the daemon at {client.url} serves no SECS/GEM (gem.enabled is false in "
                 f"its tools.yaml)", 2)
        fail_from(exc)
    except NoDaemon as exc:
        fail_from(exc)
    return client


def _switch(action: str, daemon: str | None, config: Path | None) -> None:
    typer.echo(_show(call(_client(daemon, config), "POST", f"/gem/{action}")))


@app.command()
def online(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """EQUIPMENT OFFLINE → ATTEMPT ONLINE (asks the host with S1F1)."""
    _switch("online", daemon, config)


@app.command()
def offline(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """ONLINE or HOST OFFLINE → EQUIPMENT OFFLINE (the host's commands are refused)."""
    _switch("offline", daemon, config)


@app.command()
def local(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """ONLINE REMOTE → ONLINE LOCAL: remote commands get HCACK 2, queries still work."""
    _switch("local", daemon, config)


@app.command()
def remote(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """ONLINE LOCAL → ONLINE REMOTE: the host may command the line."""
    _switch("remote", daemon, config)


@app.command()
def status(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """The control state, the host connection and the spool."""
    typer.echo(_show(call(_client(daemon, config), "GET", "/gem")))


@app.command()
def messages(daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """The terminal messages (S10) exchanged with the host, oldest first."""
    rows = call(_client(daemon, config), "GET", "/gem/messages")
    if not rows:
        typer.echo("no terminal messages")
    for m in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["t"]))
        typer.echo(f"{when} {m['source']:<9} {m['text']}")



@app.command()
def answer(text: Annotated[str, typer.Argument(help="the text for the host's terminal")],
           daemon: DaemonOpt = None, config: ConfigOpt = None) -> None:
    """Answer the host: S10F1 to its terminal (operator role, audited)."""
    sent = call(_client(daemon, config), "POST", "/gem/messages", {"text": text})
    typer.echo(f"sent to the host: {sent['text']}")
