"""The audit log of manual tool commands: who, when, tool, command, arguments, reply.

One SQLite table (``audit``) in the daemon's database, next to the journal's
tables but with its own connection. An entry is written *before* the command is
sent (outcome ``pending``) and completed with the reply after, so a daemon that
dies mid-command still shows who sent what. Refused commands are logged too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    tool TEXT NOT NULL,
    command TEXT NOT NULL,
    args TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS audit_tool_t ON audit(tool, t);
"""
OUTCOMES = ("pending", "ok", "refused", "rejected", "error")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    t: float  # unix time the command was received
    who: str
    role: str
    tool: str
    command: str
    args: dict[str, Any]
    outcome: str
    reply: str | None


class AuditLog:
    """Thread-safe; ``path`` may be ``":memory:"`` for tests."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    def begin(self, who: str, role: str, tool: str, command: str,
              args: Mapping[str, Any]) -> int:
        """Write the entry before the command goes out; returns its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (t, who, role, tool, command, args, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                (self._clock(), who, role, tool, command, json.dumps(dict(args), default=str)))
            return int(cur.lastrowid or 0)

    def finish(self, entry_id: int, outcome: str, reply: object) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} not in {OUTCOMES}")
        text = reply if isinstance(reply, str) or reply is None else json.dumps(reply,
                                                                                 default=str)
        with self._lock:
            self._db.execute("UPDATE audit SET outcome = ?, reply = ? WHERE id = ?",
                             (outcome, text, entry_id))

    def record(self, who: str, role: str, tool: str, command: str, args: Mapping[str, Any],
               outcome: str, reply: object) -> int:
        """One finished entry (a refusal, or a command that needs no two-step write)."""
        entry_id = self.begin(who, role, tool, command, args)
        self.finish(entry_id, outcome, reply)
        return entry_id

    def entries(self, *, tool: str | None = None, limit: int = 100,
                since: float | None = None) -> list[AuditEntry]:
        """Newest first."""
        sql = "SELECT id, t, who, role, tool, command, args, outcome, reply FROM audit"
        where: list[str] = []
        params: list[str | float | int] = []
        if tool is not None:
            where.append("tool = ?")
            params.append(tool)
        if since is not None:
            where.append("t >= ?")
            params.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
                for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
