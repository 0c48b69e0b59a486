"""`viaform tool TOOL ACTION` while a daemon owns the line: the action as the daemon's
manual command (``POST /tools/{tool}/commands``), printed as the direct action prints it."""

from __future__ import annotations

from typing import Any

import typer

from sequencer.faces.cli.client import Client, call
from sequencer.faces.cli.tool_render import fmt, print_table

#: CLI action → the daemon's manual command (docs/daemon.md)
DAEMON_COMMANDS = {"idn": "idn", "errors": "errors", "alarms": "alarms",
                   "clear-alarms": "clear_alarms", "reset": "reset"}


def daemon_command(client: Client, tool: str, command: str, **args: Any) -> Any:
    """One manual command through the daemon; its reply."""
    reply = call(client, "POST", f"/tools/{tool}/commands", {"command": command, "args": args})
    return reply["reply"]


def print_daemon_status(client: Client, tool: str) -> None:
    view = call(client, "GET", f"/tools/{tool}")
    e10 = view.pop("e10", None) or {}
    view["e10"] = e10.get("state")
    print_table(f"{tool} in the daemon", view)
    if view.get("connected"):
        print_table(f"{tool} status", daemon_command(client, tool, "status"))


def daemon_simple(client: Client, tool: str, action: str) -> None:
    """status, idn, errors, alarms, clear-alarms, reset through the daemon."""
    if action == "status":
        print_daemon_status(client, tool)
        return
    reply = daemon_command(client, tool, DAEMON_COMMANDS[action])
    if action == "idn":
        print_table(f"{tool} identity", reply)
    elif action == "errors":
        typer.echo("\n".join(reply) if reply else f"{tool}: no errors")
    elif action == "alarms":
        typer.echo(f"{tool} alarms: {fmt(tuple(reply))}")
    elif action == "clear-alarms":
        typer.echo(f"{tool}: alarms cleared; active now: "
                   f"{fmt(tuple(daemon_command(client, tool, 'alarms')))}")
    else:
        typer.echo(f"{tool}: reset done")
