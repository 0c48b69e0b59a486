"""`viaform alarms [--all] [--tool T] [--ack ID]`: the daemon's alarms.

Without a daemon, the alarms are read from the journal (``--db``/tools.yaml);
acknowledging needs the daemon.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import ConfigError, load_tools
from .client import DaemonOpt, call, connect, fail


def _line(a: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["raised_at"]))
    state = "ACTIVE" if a["active"] else f"acked by {a.get('acked_by') or '?'}"
    wafers = f" [{', '.join(a['wafer_ids'])}]" if a.get("wafer_ids") else ""
    return f"{a['id']:>4} {when} {a['tool']:<9} {a['kind']:<14} {state:<16} {a['text']}{wafers}"


def register(app: typer.Typer) -> None:
    @app.command()
    def alarms(
        show_all: Annotated[bool, typer.Option("--all", help="past alarms too")] = False,
        tool: Annotated[str | None, typer.Option("--tool", help="one tool's")] = None,
        ack: Annotated[int | None, typer.Option("--ack", help="acknowledge alarm ID")] = None,
        daemon: DaemonOpt = None,
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        db: Annotated[Path | None, typer.Option("--db", help="journal (no daemon)")] = None,
    ) -> None:
        """Active alarms (--all: past ones too); --ack ID acknowledges one."""
        client = connect(daemon, config, required=ack is not None)
        if ack is not None:
            assert client is not None
            typer.echo(_line(call(client, "POST", f"/alarms/{ack}/ack")))
            return
        if client is not None:
            rows = call(client, "GET", "/alarms", active=str(not show_all).lower(), tool=tool)
        else:
            rows = _from_journal(config, db, tool, show_all)
        if not rows:
            typer.echo("no active alarms" if not show_all else "no alarms")
        for a in rows:
            typer.echo(_line(a))


def _from_journal(config: Path | None, db: Path | None, tool: str | None,
                  show_all: bool) -> list[dict[str, Any]]:
    from ..daemon.history import History

    try:
        cfg = load_tools(config)
    except ConfigError as exc:
        fail(str(exc), 2)
    path = db or cfg.journal
    if not path.exists():
        fail(f"no daemon runs and no journal at {path}", 2)
    hist = History(path, cfg.time_scale)
    try:
        rows = [{"id": a.id, "raised_at": a.t, "tool": a.tool, "kind": a.kind, "text": a.text,
                 "active": a.cleared_t is None, "acked_by": a.acked_by, "wafer_ids": a.wafer_ids}
                for a in hist.alarms()]
    finally:
        hist.close()
    return [a for a in rows if (show_all or a["active"]) and tool in (None, a["tool"])]
