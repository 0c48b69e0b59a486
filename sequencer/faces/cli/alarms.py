"""`viaform alarms [--all] [--tool T] [--ack ID]`: the daemon's alarms.

Without a daemon, the alarms are read from the journal (``--db``/tools.yaml), and
``--ack ID`` records the acknowledgement there (who: ``$USER``; audited in the journal's
audit table): a ``viaform run`` holding a tool for that alarm sees it and acts on it —
it sends the tool's clear, and only if the tool says the cause is gone. This command
itself never talks to a tool. Through the daemon, acknowledging needs the technician
role. Exit codes: 0 done, 2 bad input (no such alarm, no journal), 1 the daemon refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sequencer.faces.cli.client import DaemonOpt, call, connect, fail
from sequencer.line.config import ConfigError, load_tools


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
        client = connect(daemon, config, required=False)
        if ack is not None:
            if client is not None:
                typer.echo(_line(call(client, "POST", f"/alarms/{ack}/ack")))
            else:
                typer.echo(_ack_in_journal(config, db, ack))
            return
        if client is not None:
            rows = call(client, "GET", "/alarms", active=str(not show_all).lower(), tool=tool)
        else:
            rows = _from_journal(config, db, tool, show_all)
        if not rows:
            typer.echo("no active alarms" if not show_all else "no alarms")
        for a in rows:
            typer.echo(_line(a))


def _journal(config: Path | None, db: Path | None) -> tuple[Path, float]:
    try:
        cfg = load_tools(config)
    except ConfigError as exc:
        fail(str(exc), 2)
    path = db or cfg.journal
    if not path.exists():
        fail(f"no daemon runs and no journal at {path}", 2)
    return path, cfg.time_scale


def _ack_in_journal(config: Path | None, db: Path | None, alarm_id: int) -> str:
    """Record a person's acknowledgement of ``alarm_id`` in the journal file."""
    import sqlite3

    from sequencer.store.audit import AuditLog
    from sequencer.store.history import record_ack

    path, scale = _journal(config, db)
    who = _user()
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    audit = AuditLog(path)
    try:
        row = conn.execute("SELECT tool, kind, text, cleared_t FROM alarms WHERE id=?",
                           (alarm_id,)).fetchone()
        if row is None:
            fail(f"no alarm {alarm_id} in journal {path.resolve()}", 2)
        tool, kind, text, cleared = row
        if cleared is not None:
            return f"alarm {alarm_id} ({tool} {kind}) was already acknowledged"
        now = time.time()
        with conn:
            record_ack(conn, alarm_id, now, who)
            conn.execute("UPDATE alarms SET cleared_t=? WHERE id=?", (now * scale, alarm_id))
        audit.record(who, "local", tool, "ack", {"alarm": alarm_id, "kind": kind}, "ok",
                     "acknowledged in the journal")
    except sqlite3.DatabaseError as exc:
        fail(f"journal {path.resolve()}: {exc}", 2)
    finally:
        conn.close()
        audit.close()
    held = " (the running line clears the tool once it says the cause is gone)" \
        if kind == "TOOL_HELD" else ""
    return f"alarm {alarm_id} ({tool} {kind}) acknowledged by {who}{held}"


def _user() -> str:
    import getpass
    import os

    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no user name on this system
        return "unknown"


def _from_journal(config: Path | None, db: Path | None, tool: str | None,
                  show_all: bool) -> list[dict[str, Any]]:
    from sequencer.store.history import History

    path, scale = _journal(config, db)
    hist = History(path, scale)
    try:
        rows = [{"id": a.id, "raised_at": a.t, "tool": a.tool, "kind": a.kind, "text": a.text,
                 "active": a.cleared_t is None, "acked_by": a.acked_by, "wafer_ids": a.wafer_ids}
                for a in hist.alarms()]
    finally:
        hist.close()
    return [a for a in rows if (show_all or a["active"]) and tool in (None, a["tool"])]
