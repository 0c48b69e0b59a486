"""Helpers for tests of tools held for a person: find the hold's alarm in the journal, and
acknowledge it the way a technician does, with the real ``viaform alarms --ack`` (no
daemon: the acknowledgement is written into the journal and the running line acts on it).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from typer.testing import CliRunner

from sequencer.faces.cli import app
from tests.sqlitekit import connected


def active_holds(db: Path, tool: str) -> list[tuple[int, str]]:
    """(id, text) of the unacknowledged TOOL_HELD alarms on ``tool``."""
    if not db.exists():
        return []
    try:
        with connected(f"file:{db}?mode=ro", uri=True, timeout=5.0) as con:
            return [(int(i), str(t)) for i, t in con.execute(
                "SELECT id, text FROM alarms WHERE tool=? AND kind='TOOL_HELD' AND "
                "cleared_t IS NULL ORDER BY id", (tool,)).fetchall()]
    except sqlite3.OperationalError:
        return []


def wait_held(db: Path, tool: str, timeout_s: float, *, after: int = 0,
              done: object = None) -> tuple[int, str]:
    """The first hold alarm on ``tool`` with an id above ``after``; fails after the timeout
    (or when ``done()`` says the run ended without one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holds = [h for h in active_holds(db, tool) if h[0] > after]
        if holds:
            return holds[0]
        if callable(done) and done():
            raise AssertionError(f"the run ended without holding the {tool}")
        time.sleep(0.02)
    raise AssertionError(f"the {tool} was not held within {timeout_s} s")


def ack(db: Path, alarm_id: int) -> str:
    """``viaform alarms --ack ID --db DB`` as a technician types it; its output line."""
    result = CliRunner().invoke(app, ["alarms", "--ack", str(alarm_id), "--db", str(db),
                                      "--daemon", "none"])
    assert result.exit_code == 0, result.output
    return result.output.strip()
