"""`viaform audit [--tool T] [--limit N]`: who sent which manual command, when, and the reply.

Through the daemon when one runs; otherwise read from the audit table of the journal file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.client import DaemonOpt, call, connect, fail
from sequencer.line.config import ConfigError, load_tools


def _line(e: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["t"]))
    args = f" {json.dumps(e['args'])}" if e.get("args") else ""
    reply = f" → {e['reply']}" if e.get("reply") not in (None, "") else ""
    return (f"{when} {e['who']}({e['role']}) {e['tool']} {e['command']}{args}: "
            f"{e['outcome']}{reply}")


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        tool: Annotated[str | None, typer.Option("--tool", help="one tool's")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
        daemon: DaemonOpt = None,
        config: Annotated[Path | None, typer.Option("--config", help="tools.yaml")] = None,
        db: Annotated[Path | None, typer.Option("--db", help="journal (no daemon)")] = None,
    ) -> None:
        """The audit log of manual commands, take and give, newest first."""
        client = connect(daemon, config, required=False)
        if client is not None:
            rows = call(client, "GET", "/audit", tool=tool, limit=limit)
        else:
            rows = _from_db(config, db, tool, limit)
        if not rows:
            typer.echo("no audit entries")
        for e in rows:
            typer.echo(_line(e))


def _from_db(config: Path | None, db: Path | None, tool: str | None,
             limit: int) -> list[dict[str, Any]]:
    from sequencer.store.audit import AuditLog

    try:
        path = db or load_tools(config).journal
    except ConfigError as exc:
        fail(str(exc), 2)
    if not path.exists():
        fail(f"no daemon runs and no journal at {path}", 2)
    log = AuditLog(path)
    try:
        return [dict(vars(e)) for e in log.entries(tool=tool, limit=limit)]
    finally:
        log.close()
