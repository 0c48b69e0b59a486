"""A journal file's shape and its opening checks: the schema, the ``Intent`` row, and the
one-line errors a user reads when a journal cannot be used (``JournalError``).

Kept apart from :mod:`sequencer.store.journal` (the record API) so that module holds
only what is written and read during a run.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (lot_id TEXT PRIMARY KEY, flow TEXT, job_state TEXT,
    created REAL, data TEXT);
CREATE TABLE IF NOT EXISTS wafers (wafer_id TEXT PRIMARY KEY, lot_id TEXT, slot INTEGER,
    state TEXT, data TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS transitions (id INTEGER PRIMARY KEY, t REAL, kind TEXT,
    subject TEXT, src TEXT, dst TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS commands (id INTEGER PRIMARY KEY, t REAL, tool TEXT, command TEXT,
    lot_id TEXT, wafer_ids TEXT, args TEXT, before TEXT, outcome TEXT, outcome_t REAL,
    detail TEXT);
CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY, t REAL, wafer_id TEXT, step TEXT,
    data TEXT);
CREATE TABLE IF NOT EXISTS traces (id INTEGER PRIMARY KEY, t REAL, subject TEXT, kind TEXT,
    data TEXT);
CREATE TABLE IF NOT EXISTS alarms (id INTEGER PRIMARY KEY, t REAL, tool TEXT, kind TEXT,
    text TEXT, lot_id TEXT, wafer_ids TEXT, cleared_t REAL);
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, t REAL, recipe TEXT,
    wafer_ids TEXT, state TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL);
-- the check before each start reads one tool's commands of one kind (Journal.commands):
-- without it, a scan of every command (3000 rows at 10 lots: 227 us a check, 4 a wafer)
CREATE INDEX IF NOT EXISTS commands_by_tool ON commands (tool, command);
"""


def written_time_scale(db: sqlite3.Connection) -> float | None:
    """The time scale a journal says its times are in (``meta``), or None (older files)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                  ).fetchone() is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key='time_scale'").fetchone()
    return float(row[0]) if row and row[0] else None


@dataclass(frozen=True)
class Intent:
    """A journaled command. ``before`` holds what was read from the tool just before it
    (``count``: JOB:COUNt? for the wafer, ``job_no``: JOB:LAST? number, ``boot``:
    SYSTem:BOOT?, ``batch_no``: the oven batch number intended)."""

    id: int
    t: float
    tool: str
    command: str
    lot_id: str | None
    wafer_ids: tuple[str, ...]
    args: dict[str, Any]
    before: dict[str, Any]
    outcome: str | None
    outcome_t: float | None = None  # when the OUTCOME was written


class JournalError(ValueError):
    """A journal that cannot be used (directory, permissions, damage, wafer ids): the
    message is one line for the user and says that nothing was sent to the tools."""


def ensure_journal_dir(path: Path | str) -> None:
    """Create the journal's directory if needed, and check it can be written (WAL needs
    ``-wal``/``-shm`` files beside the journal): :class:`JournalError` if not."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot create its directory {path.parent} "
                           f"({exc.strerror or exc}); nothing was sent to the tools") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise JournalError(f"journal {path}: its directory {path.parent} is read-only; "
                           "nothing was sent to the tools")


def describe_open_error(path: str, exc: sqlite3.Error) -> str:
    """One line for a failure at open: read-only, damaged, locked or other."""
    words = str(exc)
    if "readonly" in words or "read-only" in words or "unable to open" in words:
        return (f"journal {path}: cannot write it ({words}): check the permissions of the "
                "file and its directory; nothing was sent to the tools")
    if "locked" in words or "busy" in words:
        return f"journal {path}: in use ({words}); nothing was sent to the tools"
    return (f"journal {path} is damaged ({words}): move it aside or restore it; "
            "nothing was sent to the tools")
